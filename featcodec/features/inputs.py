"""Deterministic, seeded model inputs: rendered images and generated text.

No image or text data set is installed where featcodec is built, so the corpus is made from
inputs this module synthesises. Every input is a pure function of its integer id (and the
requested size), so a corpus can be rebuilt bit for bit on the same library versions.

Images mix the ingredients of natural photographs: smooth backgrounds (gradients, sky/ground
splits, 1/f "pink" noise with natural-image spectra), overlapping shapes with flat, striped
or noisy fills, lines, text, blur and sensor-like noise.

Text is written by a seeded generator over word lists and sentence templates on several
topics (weather, cooking, science, travel, computing, sport, history, finance, gardening,
music), one topic per paragraph with the odd digression.

Example:
    >>> img = render_image(7, 224)
    >>> img.size, img.mode
    ((224, 224), 'RGB')
    >>> render_image(7, 224).tobytes() == img.tobytes()
    True
    >>> make_text(3) == make_text(3)
    True
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

__all__ = ["render_image", "make_text", "image_array", "TOPICS", "CANVAS"]

#: Images are drawn on a CANVAS x CANVAS canvas and resized to the size asked for, so the same
#: input id shows the same scene at every resolution.
CANVAS = 512

_IMAGE_SEED = 0x1F3A_C0DE
_TEXT_SEED = 0x7E57_7E57


def _rng(seed: int, input_id: int) -> np.random.Generator:
    if input_id < 0:
        raise ValueError(f"input_id must be >= 0, got {input_id}")
    return np.random.default_rng([seed, input_id])


# ----------------------------------------------------------------------------- images


def _pink_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """(n, n) noise with a 1/f**beta amplitude spectrum, scaled to [0, 1]."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**beta
    spec[0, 0] = 0.0
    img = np.fft.irfft2(spec, s=(n, n))
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random colour, usually muted (grey plus a random tint), sometimes vivid."""
    grey = rng.uniform(0.05, 0.95)
    tint = rng.uniform(-0.5, 0.5, 3) * rng.uniform(0.15, 1.0)
    return np.clip(grey + tint, 0.0, 1.0)


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, n, 3) float background in [0, 1]."""
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    c0, c1 = _colour(rng), _colour(rng)
    if kind == 0:  # linear gradient in a random direction
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy)
        t = (t - t.min()) / (t.max() - t.min())
    elif kind == 1:  # radial gradient
        cx, cy = rng.uniform(0.2, 0.8, 2)
        t = np.clip(np.hypot(xx - cx, yy - cy) / rng.uniform(0.4, 1.0), 0, 1)
    elif kind == 2:  # sky over textured ground
        horizon = rng.uniform(0.3, 0.7)
        tex = _pink_noise(rng, n, rng.uniform(1.2, 2.0))
        t = np.where(yy < horizon, yy / horizon * 0.3, 0.5 + 0.5 * tex)
    elif kind == 3:  # pink noise field (natural-image spectrum), coloured per channel
        beta = rng.uniform(1.0, 2.2)
        base = np.stack([_pink_noise(rng, n, beta) for _ in range(3)], axis=-1)
        mix = rng.uniform(0.3, 0.9)
        shared = _pink_noise(rng, n, beta)[..., None]
        return np.clip(mix * shared * (c1 - c0) + c0 + (1 - mix) * (base - 0.5), 0, 1)
    else:  # flat colour
        t = np.zeros((n, n))
    return c0 + t[..., None] * (c1 - c0)


_WORDS_FOR_IMAGES = (
    "STOP", "OPEN", "cafe", "EXIT", "Sale 50%", "hello", "42", "Route 9", "night",
    "MENU", "Platform 3", "danger", "welcome", "2024", "Zurich", "fresh bread", "OK",
)


def _fill_texture(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, n, 3) texture to be shown through a shape mask."""
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:n, 0:n]
    c0, c1 = _colour(rng), _colour(rng)
    if kind == 0:  # stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        t = 0.5 + 0.5 * np.sign(np.sin((np.cos(a) * xx + np.sin(a) * yy) * 2 * np.pi / period))
    elif kind == 1:  # checkerboard
        s = int(rng.integers(8, 48))
        t = ((xx // s + yy // s) % 2).astype(float)
    elif kind == 2:  # noise texture
        t = _pink_noise(rng, n, rng.uniform(0.6, 1.6))
    else:  # shading across the shape
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy) / n
        t = (t - t.min()) / (t.max() - t.min())
    return c0 + t[..., None] * (c1 - c0)


def _draw_shapes(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    n = canvas.shape[0]
    out = canvas
    for _ in range(int(rng.integers(2, 14))):
        mask = Image.new("L", (n, n), 0)
        d = ImageDraw.Draw(mask)
        kind = rng.integers(0, 6)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * n
        r = rng.uniform(0.04, 0.35) * n
        if kind == 0:
            rx, ry = r, r * rng.uniform(0.3, 1.0)
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        elif kind == 1:
            w, h = r * rng.uniform(0.5, 2.0), r * rng.uniform(0.5, 2.0)
            d.rectangle([cx - w, cy - h, cx + w, cy + h], fill=255)
        elif kind == 2:
            k = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = r * rng.uniform(0.5, 1.0, k)
            pts = [(float(cx + q * np.cos(a)), float(cy + q * np.sin(a))) for a, q in zip(ang, rad)]
            d.polygon(pts, fill=255)
        elif kind == 3:
            for _ in range(int(rng.integers(1, 6))):
                x0, y0, x1, y1 = rng.uniform(0, n, 4)
                d.line([x0, y0, x1, y1], fill=255, width=int(rng.integers(1, 12)))
        elif kind == 4:
            text = _WORDS_FOR_IMAGES[int(rng.integers(len(_WORDS_FOR_IMAGES)))]
            font = ImageFont.load_default(size=int(rng.integers(14, 90)))
            d.text((float(rng.uniform(0, 0.7) * n), float(rng.uniform(0, 0.85) * n)), text,
                   fill=255, font=font)
        else:  # a soft blob (out-of-focus object)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
            mask = mask.filter(ImageFilter.GaussianBlur(radius=float(r * 0.4)))
        if kind != 5 and rng.uniform() < 0.3:
            mask = mask.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 3.0))))
        alpha = (np.asarray(mask, dtype=np.float64) / 255.0)[..., None]
        alpha *= rng.uniform(0.6, 1.0)
        fill = _fill_texture(rng, n) if rng.uniform() < 0.45 else _colour(rng)
        out = out * (1 - alpha) + fill * alpha
    return out


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Global blur, vignetting, sensor noise, contrast: photographic imperfections."""
    from PIL import Image, ImageFilter

    n = img.shape[0]
    if rng.uniform() < 0.35:
        pil = Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255 + 0.5))
        pil = pil.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.5))))
        img = np.asarray(pil, dtype=np.float64) / 255.0
    if rng.uniform() < 0.4:
        yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
        img = img * (1 - rng.uniform(0.2, 0.6) * (xx * xx + yy * yy))[..., None]
    if rng.uniform() < 0.6:
        img = img + rng.normal(0, rng.uniform(0.005, 0.05), img.shape)
    gamma = rng.uniform(0.7, 1.4)
    return np.clip(img, 0, 1) ** gamma


@functools.lru_cache(maxsize=4)
def _canvas(input_id: int) -> "PIL.Image.Image":  # noqa: F821
    from PIL import Image

    rng = _rng(_IMAGE_SEED, input_id)
    img = _background(rng, CANVAS)
    img = _draw_shapes(rng, img)
    img = _finish(rng, img)
    return Image.fromarray(np.uint8(img * 255 + 0.5), mode="RGB")


def render_image(input_id: int, size: int = 224) -> "PIL.Image.Image":  # noqa: F821
    """Render image ``input_id`` as an RGB ``PIL.Image`` of ``size`` x ``size`` pixels.

    The scene is drawn on a :data:`CANVAS`-pixel canvas from a generator seeded by
    ``input_id`` alone and resized (Lanczos), so every size shows the same scene.

    >>> render_image(0, 64).size
    (64, 64)
    """
    from PIL import Image

    pil = _canvas(input_id)
    if size != CANVAS:
        return pil.resize((size, size), Image.Resampling.LANCZOS)
    return pil.copy()


def image_array(input_id: int, size: int = 224) -> np.ndarray:
    """Image ``input_id`` as a float32 array (size, size, 3) in [0, 1].

    >>> image_array(1, 32).shape
    (32, 32, 3)
    """
    return np.asarray(render_image(input_id, size), dtype=np.float32) / np.float32(255.0)


# ----------------------------------------------------------------------------- text

TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "weather": {
        "noun": ("storm", "fog", "north wind", "spring rain", "heat wave", "cold front",
                 "forecast", "thunder", "snowfall", "humidity", "cloud cover", "drizzle"),
        "verb": ("swept across", "settled over", "moved toward", "lingered above",
                 "broke over", "cleared from", "crept into", "soaked"),
        "place": ("the valley", "the coast", "the northern hills", "the old harbour",
                  "the airport", "the farmland", "the city centre", "the mountain pass"),
        "adj": ("heavy", "unexpected", "mild", "bitter", "persistent", "brief", "humid",
                "freezing"),
    },
    "cooking": {
        "noun": ("sauce", "dough", "onion", "broth", "roast chicken", "risotto", "pastry",
                 "garlic", "lentil soup", "fresh basil", "butter", "the spice mix"),
        "verb": ("simmered with", "was folded into", "was served beside", "thickened",
                 "was seasoned with", "rested next to", "was whisked into", "browned"),
        "place": ("the kitchen", "a cast-iron pan", "the oven", "the market stall",
                  "the family table", "a small bistro", "the bakery", "the pantry"),
        "adj": ("crispy", "tender", "salty", "fragrant", "golden", "bitter", "creamy",
                "smoky"),
    },
    "science": {
        "noun": ("the experiment", "a protein", "the telescope", "the sample", "a neutron",
                 "the hypothesis", "the enzyme", "a magnetic field", "the fossil",
                 "the algorithm", "the crystal lattice", "the control group"),
        "verb": ("confirmed", "contradicted", "was measured against", "revealed",
                 "interacted with", "was isolated from", "predicted", "decayed into"),
        "place": ("the laboratory", "the particle accelerator", "the research station",
                  "the deep ocean", "orbit", "the clean room", "the field site",
                  "the archive"),
        "adj": ("surprising", "stable", "noisy", "reproducible", "faint", "anomalous",
                "precise", "statistical"),
    },
    "travel": {
        "noun": ("the night train", "a ferry", "the old bridge", "our guide", "the hostel",
                 "a rental car", "the border crossing", "the cathedral", "the luggage",
                 "a street market", "the ticket office", "the coastal road"),
        "verb": ("led us past", "departed from", "was delayed at", "wound along",
                 "stopped beside", "crossed", "arrived in", "looked out over"),
        "place": ("Lisbon", "the Alps", "a fishing village", "the desert", "Kyoto",
                  "the main square", "the island", "the railway station"),
        "adj": ("crowded", "quiet", "ancient", "colourful", "remote", "breathtaking",
                "dusty", "charming"),
    },
    "computing": {
        "noun": ("the compiler", "a memory leak", "the scheduler", "the database",
                 "a race condition", "the cache", "the kernel", "the test suite",
                 "a network packet", "the build server", "the parser", "the API"),
        "verb": ("crashed inside", "was optimised for", "returned an error from",
                 "was rewritten in", "blocked", "serialised", "was deployed to",
                 "timed out on"),
        "place": ("production", "the staging cluster", "a laptop", "the cloud",
                  "an embedded board", "the main branch", "the data centre",
                  "the virtual machine"),
        "adj": ("slow", "concurrent", "deprecated", "fragile", "efficient", "verbose",
                "portable", "undocumented"),
    },
    "sport": {
        "noun": ("the striker", "the goalkeeper", "the final set", "a penalty", "the coach",
                 "the relay team", "the marathon", "the referee", "the crowd",
                 "a late goal", "the season", "the defence"),
        "verb": ("dominated", "struggled against", "was cheered by", "equalised against",
                 "trained with", "outran", "celebrated with", "lost to"),
        "place": ("the stadium", "the home ground", "the track", "the final", "the league",
                  "the training camp", "the arena", "the clay court"),
        "adj": ("decisive", "exhausted", "young", "tactical", "dramatic", "veteran",
                "injured", "relentless"),
    },
    "history": {
        "noun": ("the empire", "a treaty", "the merchants", "the revolution", "the king",
                 "a manuscript", "the railway", "the guild", "the siege", "the printing press",
                 "the colony", "the council"),
        "verb": ("collapsed after", "was signed in", "traded with", "spread through",
                 "was recorded by", "rebuilt", "challenged", "ruled over"),
        "place": ("the medieval town", "the river delta", "the capital", "the frontier",
                  "the monastery", "the port cities", "the old kingdom", "the provinces"),
        "adj": ("forgotten", "powerful", "bloody", "prosperous", "contested", "ancient",
                "literate", "isolated"),
    },
    "finance": {
        "noun": ("the central bank", "inflation", "the bond market", "a startup",
                 "the quarterly report", "interest rates", "the pension fund", "a merger",
                 "the currency", "the investors", "the budget", "a loan"),
        "verb": ("rose against", "was funded by", "fell below", "was audited by",
                 "outperformed", "was hedged against", "recovered from", "depended on"),
        "place": ("the stock exchange", "the eurozone", "emerging markets", "the boardroom",
                  "the treasury", "a regional bank", "the trading floor", "Wall Street"),
        "adj": ("volatile", "cautious", "record", "risky", "modest", "sharp", "long-term",
                "unexpected"),
    },
    "gardening": {
        "noun": ("the tomatoes", "compost", "a hedge", "the seedlings", "the rose bush",
                 "an apple tree", "the soil", "slugs", "the greenhouse", "mulch",
                 "the herb bed", "wild flowers"),
        "verb": ("grew beside", "was planted in", "was pruned near", "spread over",
                 "was watered with", "bloomed under", "was protected from", "climbed"),
        "place": ("the allotment", "the back garden", "a clay pot", "the orchard",
                  "the windowsill", "the vegetable patch", "the meadow", "a raised bed"),
        "adj": ("ripe", "sunny", "damp", "overgrown", "fertile", "delicate", "hardy",
                "fragrant"),
    },
    "music": {
        "noun": ("the orchestra", "a melody", "the drummer", "the choir", "the new album",
                 "a violin", "the chorus", "the conductor", "the bass line", "the concert",
                 "an old record", "the pianist"),
        "verb": ("echoed through", "was recorded in", "played alongside", "rehearsed in",
                 "was inspired by", "opened for", "faded into", "resonated with"),
        "place": ("the concert hall", "a small club", "the studio", "the festival",
                  "the cathedral", "the radio station", "the street corner", "the opera"),
        "adj": ("melancholic", "loud", "rhythmic", "haunting", "joyful", "improvised",
                "classical", "experimental"),
    },
}

_TIMES = ("Yesterday", "Last winter", "In 1887", "Early this morning", "By noon",
          "Every summer", "Two weeks ago", "Later that evening", "In the end", "At first",
          "Meanwhile", "After a long delay", "For years", "Surprisingly")
_CONNECT = ("However,", "Because of this,", "As a result,", "Still,", "In other words,",
            "Even so,", "Afterwards,", "Oddly enough,", "For example,", "Then")
_NAMES = ("Maria", "Kenji", "Amara", "Lukas", "Priya", "Tom", "Sofia", "Omar", "Elena",
          "Jonas", "Mei", "Carlos")
_REPORT = ("said", "noted", "wrote", "explained", "admitted", "complained", "argued")


def _sentence(rng: np.random.Generator, topic: str) -> str:
    w = TOPICS[topic]

    def pick(key: str) -> str:
        seq = w[key] if key in w else globals()[key]
        return seq[int(rng.integers(len(seq)))]

    def cap(s: str) -> str:
        return s[0].upper() + s[1:]

    templates: tuple[Callable[[], str], ...] = (
        lambda: f"{pick('_TIMES')}, {pick('noun')} {pick('verb')} {pick('place')}.",
        lambda: f"{cap(pick('noun'))} {pick('verb')} {pick('noun')} in {pick('place')}.",
        lambda: f"The {pick('adj')} {pick('noun').removeprefix('the ')} {pick('verb')} "
                f"{pick('place')}, and nobody expected it.",
        lambda: f"{pick('_CONNECT')} {pick('noun')} seemed {pick('adj')} compared with "
                f"{pick('noun')}.",
        lambda: f"\"It was {pick('adj')},\" {pick('_NAMES')} {pick('_REPORT')}, "
                f"\"but {pick('noun')} {pick('verb')} {pick('place')}.\"",
        lambda: f"About {int(rng.integers(2, 990))} people watched as {pick('noun')} "
                f"{pick('verb')} {pick('place')}.",
        lambda: f"Why {pick('noun')} {pick('verb')} {pick('place')} is still a "
                f"{pick('adj')} question.",
        lambda: f"{pick('_NAMES')} thought that {pick('noun')} would be {pick('adj')}, "
                f"yet it {pick('verb')} {pick('noun')} within {int(rng.integers(2, 60))} "
                f"minutes.",
        lambda: f"In {pick('place')}, {pick('adj')} {pick('noun').removeprefix('the ')} "
                f"{pick('verb')} {pick('noun')}; {pick('noun')} did not.",
    )
    return templates[int(rng.integers(len(templates)))]()


def make_text(input_id: int, n_sentences: int | None = None) -> str:
    """Paragraph ``input_id``: 5-14 generated sentences, mostly on one topic.

    >>> make_text(0).count(".") >= 5
    True
    """
    rng = _rng(_TEXT_SEED, input_id)
    names = list(TOPICS)
    topic = names[int(rng.integers(len(names)))]
    count = int(rng.integers(5, 15)) if n_sentences is None else n_sentences
    out = []
    for _ in range(count):
        t = topic if rng.uniform() < 0.85 else names[int(rng.integers(len(names)))]
        out.append(_sentence(rng, t))
    return " ".join(out)
