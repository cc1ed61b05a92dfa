"""``escrutinio forms list|show``: the telegram form templates shipped with the pipeline.

Further actions on forms (e.g. ``forms detect``) are added to the ``actions`` subparsers in
:func:`register`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from pipeline.errors import BadInput
from pipeline.forms import FormTemplate, list_templates, load_template
from pipeline.render import render_form


def register(subparsers: argparse._SubParsersAction) -> None:
    forms = subparsers.add_parser("forms", help="telegram form templates")
    actions = forms.add_subparsers(dest="forms_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the shipped form templates").set_defaults(func=run_list)
    show = actions.add_parser("show", help="describe a template (name or JSON file)")
    show.add_argument("name", metavar="NAME")
    show.add_argument(
        "--render", type=Path, metavar="FILE.png", help="also write the blank form as an image"
    )
    show.add_argument("--dpi", type=int, default=200, help="resolution of --render (200)")
    show.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    for name in list_templates():
        template = load_template(name)
        print(f"{name}\t{template.description}")
    return 0


def describe(template: FormTemplate) -> str:
    """A human-readable description of a template: election, page, columns, rows, header."""
    e = template.election
    cells = template.value_cells()
    lines = [
        f"name:        {template.name}",
        f"description: {template.description}",
        f"election:    {e.year} {e.eleccion_tipo} {e.recuento_tipo}, distrito {e.distrito_id} "
        f"{e.distrito_nombre}",
        f"page:        {template.page_width_mm:g} x {template.page_height_mm:g} mm",
        f"table:       x {template.table.x0:.4f}..{template.table.x1:.4f}, "
        f"y {template.table.y0:.4f}..{template.table.y1:.4f} (page-relative)",
        f"cells:       {len(cells)} handwritten ({len(template.no_usar)} NO USAR)",
        f"header:      {template.header_digit_boxes} digit box(es) per count; boxes: "
        + ", ".join(sorted(template.header)),
        "columns:",
    ]
    for c in template.columns:
        lines.append(f"  {c.cargo_id:>4}  {c.cargo_nombre:<32} x {c.x0:.4f}..{c.x1:.4f}")
    lines.append("rows:")
    for r in template.rows:
        no_usar = sorted(cargo for key, cargo in template.no_usar if key == r.key)
        party = f"{r.agrupacion_nombre} / {r.lista_nombre}" if r.votos_tipo == "POSITIVO" else ""
        suffix = f"  NO USAR: {','.join(map(str, no_usar))}" if no_usar else ""
        lines.append(f"  {r.key:<12} {r.votos_tipo:<10} y {r.y0:.4f}..{r.y1:.4f}  {party}{suffix}")
    if template.source:
        lines.append(f"source:      {template.source}")
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    template = load_template(args.name)
    print(describe(template))
    if args.render is not None:
        if not 30 <= args.dpi <= 1200:
            raise BadInput(f"--dpi must be 30..1200, got {args.dpi}")
        if not cv2.imwrite(str(args.render), render_form(template, args.dpi)):
            raise BadInput(f"{args.render}: cannot write the image (unknown extension?)")
        print(f"blank form written to {args.render}")
    return 0
