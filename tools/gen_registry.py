#!/usr/bin/env python3
"""Generates data/registry/shinan.json, the Shinan district registry.

Deterministic: the same inputs give the same file byte for byte. Run from the
repository root:  python3 tools/gen_registry.py ../shared/data/registry

Real:      the district, 11 streets and 50 communities with their names,
           official statistical codes and unit ids (units.csv, NBS 2023 codes);
           the names of the commercial buildings, campuses and hospitals used
           for the special grids; landmark and road names.
SYNTHETIC: every polygon. Real grid boundaries are not public. Streets are laid
           out west to east in their real order along Shinan's real extent,
           communities tile their street, grids tile their community. The
           505 basic and 68 special grids match the counts in the seed.
           Responsible persons are placeholders (roles are real, people are not).
"""
import csv
import json
import math
import sys

EXTENT = {"west": 120.290, "east": 120.460, "south": 36.045, "north": 36.092}
BASIC_GRIDS = 505
SPECIAL_GRIDS = 68

# West to east, as the streets lie along the coast.
STREET_ORDER = ["badaxia", "yunnanlu", "zhongshanlu", "jiangsulu", "badaguan", "zhanshan",
                "xianggangzhonglu", "badahu", "jinhulu", "jinmenlu", "zhuhailu"]

# (name, street id, kind, building id): real places; their positions are synthetic.
NAMED_SPECIALS = [
    ("青岛海天中心", "zhanshan", "building"),
    ("华润万象城", "badahu", "building"),
    ("青岛国际金融中心", "xianggangzhonglu", "building"),
    ("海信广场", "badaguan", "building"),
    ("百丽广场", "xianggangzhonglu", "building"),
    ("阳光百货", "xianggangzhonglu", "building"),
    ("中铁青岛中心大厦", "xianggangzhonglu", "building"),
    ("青岛银行大厦", "xianggangzhonglu", "building"),
    ("远雄国际广场", "jinmenlu", "building"),
    ("招商银行大厦", "xianggangzhonglu", "building"),
    ("青岛香格里拉中心", "xianggangzhonglu", "building"),
    ("颐中皇冠假日酒店", "xianggangzhonglu", "building"),
    ("银座广场", "jinhulu", "building"),
    ("佳世客", "xianggangzhonglu", "building"),
    ("凯德MALL", "badahu", "building"),
    ("青岛大学附属医院", "jiangsulu", "hospital"),
    ("青岛市市立医院", "jiangsulu", "hospital"),
    ("青岛市妇女儿童医院", "zhuhailu", "hospital"),
    ("中国海洋大学鱼山校区", "badaguan", "campus"),
    ("青岛第二中学", "jinmenlu", "campus"),
    ("青岛第九中学", "zhongshanlu", "campus"),
    ("青岛第一海水浴场", "badaguan", "campus"),
]

# Landmarks and roads → community id (by name in units.csv) or street id.
LANDMARKS = {
    "五四广场": "wusiguangchang", "栈桥": "zhongshanlu", "八大关": "badaguan", "小鱼山": "badaguan",
    "鲁迅公园": "badaguan", "天主教堂": "zhongshanlu", "劈柴院": "zhongshanlu", "团岛": "tuandao",
    "奥帆中心": "xianggangzhonglu", "音乐广场": "xianggangzhonglu", "太平角": "zhanshan",
    "湛山寺": "zhanshan", "浮山所": "fushansuo", "台西": "taixi", "西镇": "xizhen",
    "香港中路": "xianggangzhonglu", "东海西路": "xianggangzhonglu", "山东路": "badahu",
    "南京路": "badahu", "延安三路": "badahu", "闽江路": "jinhulu", "燕儿岛路": "jinmenlu",
    "珠海路": "zhuhailu", "云霄路": "yunxiaolu", "江西路": "jiangxilu", "中山路": "zhongshanlu",
    "江苏路": "jiangsulu", "云南路": "yunnanlu", "金湖路": "jinhulu", "金门路": "jinmenlu",
}

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def person(seed, role, unit_path):
    name = SURNAMES[seed % len(SURNAMES)] + GIVEN[(seed * 7) % len(GIVEN)] + GIVEN[(seed * 13 + 3) % len(GIVEN)]
    return {"id": f"{role}.{unit_path}", "role": role, "name": name, "phone": f"1530532{seed % 10000:04d}"}


def split_counts(total, weights):
    """Largest-remainder apportionment: integers summing to total."""
    raw = [total * w / sum(weights) for w in weights]
    counts = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: total - sum(counts)]:
        counts[i] += 1
    return counts


def tile(box, n):
    """n rectangles exactly tiling box = (w, s, e, n): rows of near-square cells."""
    w, s, e, nn = box
    rows = max(1, round(math.sqrt(n * (nn - s) / (e - w))))
    rows = min(rows, n)
    per_row = split_counts(n, [1] * rows)
    cells = []
    for r, cols in enumerate(per_row):
        y0 = s + (nn - s) * r / rows
        y1 = s + (nn - s) * (r + 1) / rows
        for c in range(cols):
            x0 = w + (e - w) * c / cols
            x1 = w + (e - w) * (c + 1) / cols
            cells.append((x0, y0, x1, y1))
    return cells


def ring(cell):
    x0, y0, x1, y1 = (round(v, 6) for v in cell)
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def resolve(addresses):
    """One unit per name: where a name is both a street and a community in it
    (八大峡), the most specific unit wins; a name naming unrelated units is dropped."""
    units = {}
    for a in addresses:
        units.setdefault(a["name"], set()).add(a["unit"])
    out = []
    for name in sorted(units):
        deepest = max(units[name], key=lambda u: (u.count("."), u))
        if all(deepest == u or deepest.startswith(u + ".") for u in units[name]):
            out.append({"name": name, "unit": deepest})
    return out


def main(shared):
    rows = list(csv.DictReader(open(f"{shared}/units.csv", encoding="utf-8")))
    district = next(r for r in rows if r["level"] == "district")
    streets = {r["id"]: r for r in rows if r["level"] == "street"}
    assert sorted(streets) == sorted(STREET_ORDER), "street list changed"
    communities = {s: [r for r in rows if r["level"] == "community" and r["path"].startswith(streets[s]["path"] + ".")]
                   for s in STREET_ORDER}

    units, grids, addresses = [], [], []
    seed = 1
    units.append({"path": district["path"], "level": "district", "name": district["name"], "code": district["code"],
                  "persons": [person(seed + i, role, district["path"]) for i, role in enumerate(["leader", "section", "responsible"])]})
    seed += 3

    ncom = [len(communities[s]) for s in STREET_ORDER]
    widths = [(EXTENT["east"] - EXTENT["west"]) * k / sum(ncom) for k in ncom]
    grid_counts = split_counts(BASIC_GRIDS, [1] * sum(ncom))
    all_communities = [c for s in STREET_ORDER for c in communities[s]]
    community_boxes = {}
    x = EXTENT["west"]
    for s, width in zip(STREET_ORDER, widths):
        street = streets[s]
        # The coast curves: the south edge wanders a little, deterministically.
        south = EXTENT["south"] + 0.004 * math.sin(STREET_ORDER.index(s))
        box = (x, south, x + width, EXTENT["north"])
        x += width
        units.append({"path": street["path"], "level": "street", "name": street["name"], "code": street["code"],
                      "polygon": ring(box),
                      "persons": [person(seed + i, role, street["path"]) for i, role in enumerate(["leader", "section", "responsible"])]})
        seed += 3
        addresses.append({"name": street["name"], "unit": street["path"]})
        addresses.append({"name": street["name"].removesuffix("街道"), "unit": street["path"]})
        for c, cell in zip(communities[s], tile(box, len(communities[s]))):
            community_boxes[c["path"]] = cell
            units.append({"path": c["path"], "level": "community", "name": c["name"], "code": c["code"],
                          "polygon": ring(cell), "persons": [person(seed, "responsible", c["path"])]})
            seed += 1
            addresses.append({"name": c["name"], "unit": c["path"]})
            addresses.append({"name": c["name"].removesuffix("社区"), "unit": c["path"]})

    for c, n in zip(all_communities, grid_counts):
        for i, cell in enumerate(tile(community_boxes[c["path"]], n), start=1):
            path = f"{c['path']}.g{i:03d}"
            grids.append({"path": path, "kind": "basic", "name": f"{c['name']}第{i}网格", "polygon": ring(cell),
                          "worker": person(seed, "grid_worker", path)})
            seed += 1

    # Special grids: the named places first, then further commercial buildings,
    # spread over the streets with the most business floor space.
    specials = list(NAMED_SPECIALS)
    busy = ["xianggangzhonglu", "badahu", "jinhulu", "jinmenlu", "zhanshan", "badaguan", "zhuhailu", "jiangsulu"]
    k = 0
    while len(specials) < SPECIAL_GRIDS:
        s = busy[k % len(busy)]
        specials.append((f"{streets[s]['name'].removesuffix('街道')}商务楼宇{k // len(busy) + 1}号", s, "building"))
        k += 1
    per_community = {}
    for j, (name, s, kind) in enumerate(specials):
        comms = communities[s]
        c = comms[j % len(comms)]
        per_community[c["path"]] = per_community.get(c["path"], 0) + 1
        sid = per_community[c["path"]]
        w, so, e, n = community_boxes[c["path"]]
        # A small block (≈100 m) somewhere inside the community.
        fx = ((j * 37) % 80 + 10) / 100
        fy = ((j * 53) % 80 + 10) / 100
        cx, cy = w + (e - w) * fx, so + (n - so) * fy
        half = 0.0006
        path = f"{c['path']}.s{sid:02d}"
        building = f"B{j + 1:03d}"
        grids.append({"path": path, "kind": "special", "special_kind": kind, "name": name,
                      "polygon": ring((cx - half, cy - half, cx + half, cy + half)),
                      "buildings": [building], "worker": person(seed, "building_steward", path)})
        seed += 1
        addresses.append({"name": name, "unit": path})

    by_id = {}
    for u in units:
        by_id.setdefault(u["path"].split(".")[-1], u["path"])
    for name, target in LANDMARKS.items():
        unit = by_id.get(target) or next(u["path"] for u in units if u["path"].endswith("." + target))
        addresses.append({"name": name, "unit": unit})

    out = {
        "format": "nuannan-registry/1",
        "district": district["path"],
        "synthetic_geometry": True,
        "note": "Names and codes are real (NBS 2023). Every polygon and every person is synthetic; see tools/gen_registry.py.",
        "units": units,
        "grids": grids,
        "addresses": resolve(addresses),
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/registry")
