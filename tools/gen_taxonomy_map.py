#!/usr/bin/env python3
"""Maps the real 3-level complaint taxonomy onto nuannan's three categories
and a resolution class (working days). Deterministic; run from the repo root:
  python3 tools/gen_taxonomy_map.py ../shared/data/complaints/teddy2020C_taxonomy_3level.csv > data/taxonomy/category_map.csv

Rules, most specific first: a level-3 rule, then a level-2 rule, then the
level-1 default. Livelihood (民生) = services residents live by; enforcement
(执法) = matters needing a law-enforcement function (violations, pollution,
market supervision, public order); development (发展) = economy, land,
planning, enterprises. Class 1 day = hazards to life or a basic utility cut.
"""
import csv
import sys

LEVEL1 = {
    "城乡建设": "livelihood", "党务政务": "livelihood", "国土资源": "development", "环境保护": "enforcement",
    "纪检监察": "enforcement", "交通运输": "livelihood", "经济管理": "development", "科技与信息产业": "development",
    "民政": "livelihood", "农村农业": "development", "商贸旅游": "development", "卫生计生": "livelihood",
    "政法": "enforcement", "教育文体": "livelihood", "劳动和社会保障": "livelihood",
}
LEVEL2 = {
    ("城乡建设", "安全生产"): "enforcement", ("城乡建设", "城乡规划"): "development",
    ("城乡建设", "村镇建设"): "development", ("城乡建设", "工程质量"): "enforcement",
    ("城乡建设", "国有土地上房屋征收与补偿"): "development", ("城乡建设", "集体土地上房屋拆迁与补偿"): "development",
    ("城乡建设", "建筑市场"): "enforcement", ("环境保护", "建设项目审批"): "development",
    ("交通运输", "出租车管理"): "enforcement", ("交通运输", "建设管理"): "development",
    ("经济管理", "安全生产"): "enforcement", ("科技与信息产业", "电信"): "livelihood",
    ("商贸旅游", "市场监管"): "enforcement", ("商贸旅游", "质监检验检疫"): "enforcement",
    ("卫生计生", "食品药品监管"): "enforcement", ("卫生计生", "医政监管"): "enforcement",
    ("政法", "法律服务"): "livelihood", ("政法", "户籍证件"): "livelihood",
    ("劳动和社会保障", "劳动保护"): "enforcement", ("劳动和社会保障", "劳动关系"): "enforcement",
}
LEVEL3 = {"城管执法": "enforcement", "违章建筑": "enforcement"}
ONE_DAY = {"事故处理", "安全隐患", "燃气供应", "电力供应", "自来水供应", "冬季采暖", "施工安全"}
DEFAULT_DAYS = {"livelihood": 2, "enforcement": 5, "development": 5}


def main(path):
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["level1", "level2", "level3", "category", "working_days"])
    for r in rows:
        l1, l2, l3 = r["一级分类"], r["二级分类"], r["三级分类"]
        category = LEVEL3.get(l3) or LEVEL2.get((l1, l2)) or LEVEL1[l1]
        days = 1 if l3 in ONE_DAY else DEFAULT_DAYS[category]
        out.writerow([l1, l2, l3, category, days])


if __name__ == "__main__":
    main(sys.argv[1])
