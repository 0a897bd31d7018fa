"""Regenerates the textdir example's sample images: one rendered line of text, upright and rotated 180°.

``python3 make_samples.py`` writes ``samples/upright.png`` and ``samples/rotated.png`` (grayscale PNGs
of a few KB) with Pillow's built-in font (Pillow >= 10.1 with FreeType). The committed PNGs are what
the tests use; this script only documents how they were made.
"""

import os

from PIL import Image, ImageDraw, ImageFont

TEXT = "Sluice runs serverless GPU functions"
HERE = os.path.dirname(os.path.abspath(__file__))


def render(text=TEXT, size=32, pad=8):
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 255)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=0, font=font)
    return image


def main():
    out = os.path.join(HERE, "samples")
    os.makedirs(out, exist_ok=True)
    upright = render()
    upright.save(os.path.join(out, "upright.png"), optimize=True)
    upright.rotate(180).save(os.path.join(out, "rotated.png"), optimize=True)


if __name__ == "__main__":
    main()
