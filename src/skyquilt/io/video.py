"""Whether MP4 animations can be encoded: the workflow declares them only then."""


def ffmpeg_available() -> bool:
    """True when imageio-ffmpeg finds an ffmpeg binary (its own or the system's).

    Checked without importing matplotlib, so that parsing the workflow stays light.
    """
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True
