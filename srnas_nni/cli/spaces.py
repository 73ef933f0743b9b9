"""``srnas space list`` and ``srnas space info``."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("space", help="list search spaces, or describe one",
                       description="'srnas space list' names the registered spaces, their YAML presets "
                                   "(search_spaces/) and the published architectures; 'srnas space info NAME' prints "
                                   "every label with its choices and the size of the space.")
    space_sub = p.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    q = space_sub.add_parser("list", help="spaces, YAML presets and published architectures")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=_cmd_space_list, uses_nni=False)
    q = space_sub.add_parser("info", help="labels, choices per label and log10 of the number of architectures")
    q.add_argument("name", help="a registered space (hnas, dlsr, ...) or a YAML preset (dlsr-proxy, path.yaml)")
    q.add_argument("--scale", type=int, default=None, help="override the preset's scale")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=_cmd_space_info)


def _cmd_space_list(args) -> int:
    from ..presets import published_presets as presets
    from ..spaces import list_spaces, space_preset_names

    table = {
        "spaces": list_spaces(),
        "yaml_presets": space_preset_names(),
        "published": {name: {"space": p.space, "scales": list(p.scales)} for name, p in presets().items()},
    }
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print("spaces:       " + ", ".join(table["spaces"]))
        print("YAML presets: " + ", ".join(table["yaml_presets"]))
        print("published:    " + ", ".join(f"{n} ({p['space']}, x{'/x'.join(map(str, p['scales']))})"
                                           for n, p in table["published"].items()))
    return 0


def _cmd_space_info(args) -> int:
    from ..spaces import get, list_spaces, load_space_preset

    overrides = {} if args.scale is None else {"scale": args.scale}
    if args.name in list_spaces():
        space = get(args.name, **overrides)
    else:
        space = load_space_preset(args.name, **overrides)
    info = space.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"{args.name}: {info['space']} x{info['scale']}, {info['num_labels']} labels, "
              f"10^{info['log10_size']:.2f} architectures")
        for label, entry in info["labels"].items():
            kind = f" (choose {entry['n_chosen']})" if entry.get("n_chosen") is not None else ""
            print(f"  {label}: {entry['values']}{kind}")
    return 0
