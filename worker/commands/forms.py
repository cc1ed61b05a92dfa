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
    register_detect(actions)


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
        f"cells:       {len(cells)} handwritten ({len(template.no_usar)} NO USAR), counts "
        + ("unbounded" if template.max_count is None else f"at most {template.max_count}"),
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


# ---- forms detect (issue 5 item 9; pipeline.grid) ------------------------------------------


def register_detect(actions: argparse._SubParsersAction) -> None:
    """``forms detect REFERENCE_SCAN --rows ROWS.csv --columns COLS.csv --out NAME.json``."""
    detect = actions.add_parser(
        "detect", help="build a template from a reference scan's table grid and named rows/columns"
    )
    detect.add_argument("scan", type=Path, metavar="REFERENCE_SCAN")
    detect.add_argument(
        "--rows",
        type=Path,
        required=True,
        metavar="ROWS.csv",
        help="votos_tipo,agrupacion_id,agrupacion_nombre,lista_numero,"
        "lista_nombre[,label][,no_usar] (top to bottom)",
    )
    detect.add_argument(
        "--columns",
        type=Path,
        required=True,
        metavar="COLS.csv",
        help="cargo_id,cargo_nombre[,title] (office columns, left to right)",
    )
    detect.add_argument("--out", type=Path, required=True, metavar="NAME.json")
    detect.add_argument(
        "--header-from",
        default="arg-2019-paso-caba",
        metavar="TEMPLATE",
        help="template whose header boxes, election and count bound (max_count) the new one copies",
    )
    detect.add_argument(
        "--compare",
        metavar="TEMPLATE",
        help="print how far the detected grid is from this template's",
    )
    detect.set_defaults(func=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    import json

    from pipeline.grid import (
        build_template,
        compare_templates,
        detect_grid,
        read_columns_csv,
        read_rows_csv,
    )
    from pipeline.read import load_scan
    from worker.settings import get_settings

    settings = get_settings()
    image = load_scan(args.scan, settings.max_scan_bytes, settings.max_scan_pixels)
    rows = read_rows_csv(args.rows)
    columns = read_columns_csv(args.columns)
    grid = detect_grid(image)
    name = args.out.stem
    data, template = build_template(grid, rows, columns, name, load_template(args.header_from))
    try:
        args.out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{args.out}: cannot write ({exc.strerror or exc})") from exc
    print(
        f"{args.out}: {len(grid.horizontal)} horizontal and {len(grid.vertical)} vertical lines, "
        f"{len(template.rows)} rows x {len(template.columns)} columns, "
        f"{len(template.no_usar)} NO USAR cells"
    )
    if args.compare:
        differences = compare_templates(template, load_template(args.compare))
        print(
            f"compared with {args.compare}: table box {differences['table_box']:.5f}, "
            f"row lines {differences['row_lines']:.5f}, column lines "
            f"{differences['column_lines']:.5f} (page-relative, largest), "
            f"{int(differences['no_usar_differences'])} NO USAR cells differ"
        )
    return 0
