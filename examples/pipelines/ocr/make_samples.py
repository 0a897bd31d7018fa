"""Regenerates the OCR pipeline's sample images and ``samples/expected.json`` (the text drawn).

``python3 make_samples.py`` writes five PNGs of printed English text into ``samples/``: one line, the
same kind of line turned 180 degrees, a multi-line paragraph, a two-column receipt, and a tilted
white-on-blue sign; each is lightly blurred and given a little sensor noise so it looks scanned or
photographed. Fonts: DejaVu (Debian's ``fonts-dejavu-core``) when present, else Pillow's built-in
font. The committed PNGs (and expected.json) are what the tests use; this script documents how they
were made. The noise is seeded, so a rerun with the same fonts gives the same pixels.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "samples")
DEJAVU = "/usr/share/fonts/truetype/dejavu"
PAPER = 246


def font(size, name="DejaVuSans.ttf"):
    path = os.path.join(DEJAVU, name)
    return ImageFont.truetype(path, size) if os.path.isfile(path) else ImageFont.load_default(size=size)


def scanned(image, seed, blur=0.6, noise=2.5):
    """Blur a little and add Gaussian luminance noise (the same on every channel), keeping the mode."""
    image = image.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(image).astype(np.float32)
    grain = np.random.default_rng(seed).normal(0.0, noise, a.shape[:2])
    a += grain if a.ndim == 2 else grain[:, :, None]
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), image.mode)


def text_block(lines, fnt, spacing=14, pad=24, fill=30, bg=PAPER, mode="L"):
    """Lines of left-aligned text on a plain background."""
    boxes = [fnt.getbbox(t) for t in lines]
    line_h = max(b[3] - b[1] for b in boxes)
    width = max(b[2] - b[0] for b in boxes) + 2 * pad
    height = len(lines) * line_h + (len(lines) - 1) * spacing + 2 * pad
    image = Image.new(mode, (width, height), bg)
    draw = ImageDraw.Draw(image)
    for i, (text, box) in enumerate(zip(lines, boxes, strict=True)):
        draw.text((pad - box[0], pad + i * (line_h + spacing) - box[1]), text, fill=fill, font=fnt)
    return image


def receipt(rows, fnt, width=460, pad=24, spacing=16):
    """Two columns: item on the left, price right-aligned."""
    line_h = max(fnt.getbbox(a + b)[3] - fnt.getbbox(a + b)[1] for a, b in rows)
    height = len(rows) * line_h + (len(rows) - 1) * spacing + 2 * pad
    image = Image.new("L", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    for i, (item, price) in enumerate(rows):
        y = pad + i * (line_h + spacing)
        draw.text((pad, y), item, fill=25, font=fnt)
        right = fnt.getbbox(price)[2]
        draw.text((width - pad - right, y), price, fill=25, font=fnt)
    return image


def sign(text, fnt):
    """White text on a blue panel, tilted a few degrees on a grey wall."""
    box = fnt.getbbox(text)
    panel = Image.new("RGB", (box[2] - box[0] + 60, box[3] - box[1] + 40), (28, 68, 140))
    ImageDraw.Draw(panel).text((30 - box[0], 20 - box[1]), text, fill=(245, 245, 240), font=fnt)
    panel = panel.rotate(4, resample=Image.BICUBIC, expand=True, fillcolor=(150, 150, 146))
    wall = Image.new("RGB", (panel.width + 80, panel.height + 80), (150, 150, 146))
    wall.paste(panel, (40, 40))
    return wall


SAMPLES = {
    "line.png": ["Invoice 2024-117 was paid in full"],
    "upside_down.png": ["Serverless pipelines share one GPU"],
    "paragraph.png": [
        "The quick brown fox jumps over the lazy dog.",
        "Each stage of the pipeline runs in its own",
        "sandbox and passes batches to the next one",
        "through shared memory when they are placed",
        "on the same machine.",
    ],
    "receipt.png": ["Coffee", "3.50", "Bagel with cheese", "4.25", "Orange juice", "2.80", "TOTAL", "10.55"],
    "sign.png": ["Platform 4 Exit"],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    images = {
        "line.png": scanned(text_block(SAMPLES["line.png"], font(30), pad=14), seed=1),
        "upside_down.png": scanned(text_block(SAMPLES["upside_down.png"], font(30), pad=14).rotate(180), seed=2),
        "paragraph.png": scanned(text_block(SAMPLES["paragraph.png"], font(24, "DejaVuSerif.ttf")), seed=3),
        "receipt.png": scanned(
            receipt(
                list(zip(SAMPLES["receipt.png"][::2], SAMPLES["receipt.png"][1::2], strict=True)),
                font(24, "DejaVuSansMono.ttf"),
            ),
            seed=4,
        ),
        "sign.png": scanned(sign(SAMPLES["sign.png"][0], font(40, "DejaVuSans-Bold.ttf")), seed=5, blur=0.8),
    }
    for name, image in images.items():
        image.save(os.path.join(OUT, name), optimize=True)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(SAMPLES, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
