"""What reading PDFs in a child process (index.documents.read_pdf) costs against parsing them
in the process, interleaved on the same files:

    python -m bench.pdf_read [--pdfs 20] [--pages 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from index.documents import _parse_pdf, read_pdf

LINE = "Officials said on Tuesday that the convoy of forty wagons had been sent back. "


def make_pdf(pages: int, n: int) -> bytes:
    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                             NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    for p in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        ops = " ".join(f"({LINE} {n}.{p}.{i}) Tj T*" for i in range(40))
        stream.set_data(f"BT /F1 9 Tf 11 TL 40 760 Td {ops} ET".encode("latin-1"))
        page.replace_contents(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pdfs", type=int, default=20)
    ap.add_argument("--pages", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    pdfs = [make_pdf(args.pages, n) for n in range(args.pdfs)]
    inside, child = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        for data in pdfs:
            _parse_pdf(data)
        inside.append((time.perf_counter() - t) / len(pdfs))
        t = time.perf_counter()
        for data in pdfs:
            read_pdf(data)
        child.append((time.perf_counter() - t) / len(pdfs))
    a, b = statistics.median(inside), statistics.median(child)
    print(f"{args.pdfs} PDFs of {args.pages} pages, {args.runs} interleaved runs, per PDF: "
          f"in the process {a * 1000:.0f} ms, in a child {b * 1000:.0f} ms "
          f"(+{(b - a) * 1000:.0f} ms, {b / a:.1f}x)")


if __name__ == "__main__":
    main()
