"""Values found in text: dates and quantities with their units, and arithmetic over them.

A language model of half a billion parameters cannot be trusted to subtract 1942 from 2007;
this code can. The reader finds each value in its passage, then :func:`difference`,
:func:`total` and :func:`ratio` compute, and :func:`compare` decides which is earlier or larger.
Chinese numerals ("八十五", "两万一千") are read by ``cn2an``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>1[0-9]{3}|20[0-9]{2})"
_DATE_PATTERNS = [
    re.compile(rf"\b(?P<day>[0-3]?\d)\s+{_MONTH}\s*,?\s+{_YEAR}\b", re.IGNORECASE),  # 27 March 1942
    re.compile(rf"\b{_MONTH}\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\s*,?\s+{_YEAR}\b", re.IGNORECASE),  # March 27, 1942
    re.compile(rf"\b{_MONTH}\s+{_YEAR}\b", re.IGNORECASE),  # March 1942
    re.compile(r"(?P<year>\d{3,4})\s*年\s*(?:(?P<month>1[0-2]|0?[1-9])\s*月\s*(?:(?P<day>[0-3]?\d)\s*[日号])?)?"),
    re.compile(rf"(?<![\d.,]){_YEAR}(?![\d,]|\.\d)(?:s\b)?"),  # 1942 (not 1942.5, 1,942)
]
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?")
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿点]+")
# A unit is the word right after the number: "80 ℃", "240 pounds", "五册", "14 days".
_UNIT = re.compile(r"\s*(%|‰|℃|°C|°F|°|[A-Za-z€£$¥]+\.?|[\u4e00-\u9fff]{1,3})")
_CURRENCY_BEFORE = re.compile(r"([€£$¥])\s*$")
_CN_UNIT_STOP = re.compile(r"[的是和与或在了，。、；：]")


@dataclass(frozen=True, order=True)
class Date:
    """A date as far as the text says it: a year, maybe a month and a day."""

    year: int
    month: int = 0
    day: int = 0

    def __str__(self) -> str:
        return f"{self.year}" + (f"-{self.month:02d}" if self.month else "") + (f"-{self.day:02d}" if self.day else "")


@dataclass(frozen=True)
class Quantity:
    """A number with the unit written after it ("" when none)."""

    value: float
    unit: str = ""
    text: str = ""

    def format(self, value: float | None = None) -> str:
        """The number with its unit, as an answer writes it ("80℃", "$5", "240 pounds"); ``value``
        in place of its own where given."""
        value = self.value if value is None else value
        number = f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.4g}"
        if not self.unit:
            return number
        joiner = "" if (re.match(r"[\u4e00-\u9fff%‰℃°]", self.unit) or self.unit in "€£$¥") else " "
        return f"{self.unit}{number}" if self.unit in "€£$¥" else f"{number}{joiner}{self.unit}"


def find_dates(text: str) -> list[Date]:
    """The dates in ``text``, in the order they appear (the most precise reading of each place)."""
    found: list[tuple[int, int, Date]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text or ""):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            groups = match.groupdict()
            month = groups.get("month")
            month_number = (
                _MONTHS.get(month.lower().rstrip("."), 0)
                if month and not month.isdigit()
                else int(month)
                if month
                else 0
            )
            day = int(groups["day"]) if groups.get("day") else 0
            year = int(groups["year"])
            if year < 100:
                continue
            found.append((match.start(), match.end(), Date(year, month_number, day if day <= 31 else 0)))
            taken.append((match.start(), match.end()))
    return [date for _, _, date in sorted(found)]


def first_date(text: str) -> Date | None:
    """The first date in ``text``; ``None`` when it has none."""
    dates = find_dates(text)
    return dates[0] if dates else None


def _cn_value(text: str) -> float | None:
    import cn2an

    try:
        return float(cn2an.cn2an(text, "smart"))
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def find_quantities(text: str) -> list[Quantity]:
    """The numbers in ``text`` (Arabic or Chinese numerals) with the unit after each."""
    text = text or ""
    found: list[tuple[int, Quantity]] = []
    spans: list[tuple[int, int]] = []
    for match in _NUMBER.finditer(text):
        value = float(match.group().replace(",", ""))
        unit = _currency_before(text, match.start()) or _unit_after(text, match.end())
        found.append((match.start(), Quantity(value, unit, match.group())))
        spans.append((match.start(), match.end()))
    for match in _CN_NUMBER.finditer(text):
        word = match.group()
        if word in ("点", "万", "亿", "千", "百") or any(match.start() < e and s < match.end() for s, e in spans):
            continue
        if len(word) == 1 and word in "一两" and not _unit_after(text, match.end()):
            continue  # "一" alone is more often "a" than "1"
        cn_value = _cn_value(word)
        if cn_value is not None:
            found.append((match.start(), Quantity(cn_value, _unit_after(text, match.end()), word)))
    return [quantity for _, quantity in sorted(found, key=lambda pair: pair[0])]


def _unit_after(text: str, end: int) -> str:
    match = _UNIT.match(text, end)
    if not match:
        return ""
    unit = match.group(1)
    if re.match(r"[\u4e00-\u9fff]", unit):
        unit = _CN_UNIT_STOP.split(unit)[0]
        if unit[:1] in "年月日号":  # a date, read by find_dates
            return unit[:1]
        if unit.startswith(("摄氏", "华氏")):
            return unit[:2] + "度"
        return unit[:2] if unit[:2] in ("公里", "小时", "分钟", "公斤", "千克", "平方") else unit[:1]
    return unit.rstrip(".")


def _currency_before(text: str, start: int) -> str:
    match = _CURRENCY_BEFORE.search(text[:start])
    return match.group(1) if match else ""


def first_quantity(text: str, unit_like: str = "") -> Quantity | None:
    """The first quantity in ``text``; with ``unit_like``, the first whose unit matches it."""
    quantities = [q for q in find_quantities(text) if q.unit not in ("年", "月", "日", "号")] or find_quantities(text)
    if unit_like:
        same = [q for q in quantities if same_unit(q.unit, unit_like)]
        quantities = same or quantities
    return quantities[0] if quantities else None


_UNIT_FAMILIES = [
    {"℃", "°c", "°", "摄氏度", "度", "degrees"},
    {"%", "percent", "per cent", "百分之"},
    {"km", "公里", "kilometres", "kilometers", "千米"},
    {"m", "米", "metres", "meters"},
    {"kg", "公斤", "千克", "kilograms"},
    {"元", "yuan", "rmb", "¥"},
    {"€", "euros", "euro", "eur"},
    {"£", "pounds", "pound", "gbp"},
    {"$", "dollars", "dollar", "usd"},
    {"天", "日", "days", "day"},
    {"年", "years", "year"},
    {"小时", "hours", "hour", "h"},
    {"分钟", "分", "minutes", "minute", "min"},
    {"本", "册", "books", "book", "volumes"},
]


# Spans of time in days, so "一周" and "十四天" compare: 7 against 14.
_DAYS = {
    **dict.fromkeys(("分钟", "minutes", "minute", "min"), 1 / 1440),
    **dict.fromkeys(("小时", "hours", "hour", "h"), 1 / 24),
    **dict.fromkeys(("天", "日", "days", "day"), 1.0),
    **dict.fromkeys(("周", "星期", "个星期", "weeks", "week"), 7.0),
    **dict.fromkeys(("个月", "月", "months", "month"), 30.0),
    **dict.fromkeys(("年", "years", "year"), 365.0),
}


def same_unit(a: str, b: str) -> bool:
    """Whether two unit words measure the same thing ("摄氏" and "℃", "days" and "day")."""
    a, b = a.lower().strip(), b.lower().strip()
    if a == b:
        return True
    return any(a in family and b in family for family in _UNIT_FAMILIES)


def in_unit_of(b: Quantity, a: Quantity) -> Quantity | None:
    """``b`` in ``a``'s unit: itself when the units are the same (or one has none), converted
    when both are spans of time ("2周" in days: 14), ``None`` when they measure different things."""
    if not a.unit or not b.unit or same_unit(a.unit, b.unit):
        return b
    days_a, days_b = _DAYS.get(a.unit.lower().strip()), _DAYS.get(b.unit.lower().strip())
    if days_a is None or days_b is None:
        return None
    return Quantity(b.value * days_b / days_a, a.unit, b.text)


def difference(a: Quantity, b: Quantity) -> Quantity | None:
    """|a - b| in a's unit; ``None`` when the units measure different things."""
    b_in_a = in_unit_of(b, a)
    if b_in_a is None:
        return None
    return Quantity(abs(a.value - b_in_a.value), a.unit or b.unit)


def total(values: list[Quantity]) -> Quantity | None:
    """The sum, in the first unit given; ``None`` for no values or units of different things."""
    if not values:
        return None
    first = next((q for q in values if q.unit), values[0])
    converted = [in_unit_of(q, first) for q in values]
    if any(q is None for q in converted):
        return None
    return Quantity(sum(q.value for q in converted if q is not None), first.unit)


def ratio(a: Quantity, b: Quantity) -> float | None:
    """a / b; ``None`` when b is 0 or the units measure different things."""
    b_in_a = in_unit_of(b, a)
    if b_in_a is None or b_in_a.value == 0:
        return None
    return a.value / b_in_a.value


def years_between(a: Date, b: Date) -> int:
    """Whole years from the earlier date to the later one (a birthday not yet reached does not count)."""
    early, late = sorted((a, b))
    years = late.year - early.year
    if early.month and late.month and (late.month, late.day or 0) < (early.month, early.day or 0):
        years -= 1
    return years


# --- places ---------------------------------------------------------------------------------------

# China's province-level divisions, as a place is written largest first ("福建福鼎", "浙江杭州西湖").
_PROVINCES_ZH = re.compile(
    "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|海南|四川|"
    "贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门"
)


def province_of(place: str) -> str | None:
    """The province-level division a Chinese place name starts in ("福建福鼎" -> "福建"), or
    ``None`` when it names none."""
    match = _PROVINCES_ZH.search(place)
    return match.group() if match else None
