"""Draws docs/images/blankets.png, the picture of the README: a trajectory of T states covered
by overlapping blankets of K states, each state taken from the blanket where it sits furthest
from an edge (`generation.stitch: symmetric`). Run: python docs/images/blankets.py"""

from pathlib import Path

from matplotlib.patches import Rectangle

from skyquilt.plotting.figures import new_figure, save_figure
from skyquilt.sampling.blankets import blanket_count, padded_size

SIZE, BLANKET, OVERLAP = 18, 8, 4  # T, K, O
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")


def kept(index: int, count: int) -> tuple[int, int]:
    """States [start, stop) of blanket `index` that symmetric stitching keeps."""
    stride = BLANKET - OVERLAP
    start = 0 if index == 0 else OVERLAP // 2
    stop = BLANKET if index == count - 1 else OVERLAP // 2 + stride
    return index * stride + start, index * stride + stop


def draw(path: Path) -> Path:
    """The picture, written to `path`."""
    padded = padded_size(SIZE, BLANKET, OVERLAP)
    count = blanket_count(SIZE, BLANKET, OVERLAP)
    figure, axes = new_figure(1, 1, figsize=(6.4, 2.8), dpi=100)
    ax = axes[0, 0]
    for index in range(count):
        first = index * (BLANKET - OVERLAP)
        row = count - index
        colour = COLOURS[index % len(COLOURS)]
        ax.add_patch(Rectangle((first, row), BLANKET, 0.7, facecolor=colour, alpha=0.25))
        start, stop = kept(index, count)
        ax.add_patch(Rectangle((start, row), stop - start, 0.7, facecolor=colour, alpha=0.8))
        ax.text(first - 0.3, row + 0.35, f"blanket {index + 1}", ha="right", va="center")
        for state in range(start, stop):  # the composed trajectory: each state's blanket
            hatch = "////" if state >= SIZE else None
            ax.add_patch(
                Rectangle((state, -0.2), 1, 0.7, facecolor=colour, edgecolor="white", hatch=hatch)
            )
    ax.text(-0.3, 0.15, "trajectory", ha="right", va="center")
    figure.text(
        0.5,
        0.02,
        f"T = {SIZE} (padded to T' = {padded}; hatched: trimmed), K = {BLANKET}, O = {OVERLAP}:\n"
        f"N = {count} blankets, denoised as one batch; each state from one blanket",
        ha="center",
        va="bottom",
        fontsize=9,
    )
    ax.set_xlim(-4.5, padded + 0.5)
    ax.set_ylim(-1.3, count + 0.9)
    ax.set_axis_off()
    return save_figure(figure, path)


if __name__ == "__main__":
    draw(Path(__file__).with_suffix(".png"))
