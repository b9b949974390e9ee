"""Synthetic core-banking extracts: one spec-format batch (six tables + control files) per calendar day.

Every day's content is a pure function of (seed, customer count, day): static attributes come from
generators seeded with ``[seed, 0, stream]`` and daily noise from ``[seed, day.toordinal(), stream]``,
so any day can be generated alone and comes out byte-identical. Slowly changing things (balances, FX,
arrears) are closed-form functions of the day rather than random walks, which would need state.

Lifecycle events (account openings and closings, customer closings, loans) are spread over the business
dates ``EVENT_WINDOW`` (2020-2035); customers all open before it. Periods inside the window see a steady
trickle of events; periods outside it are valid but quieter.

Everything is vectorised: numpy for values, Arrow binary kernels to assemble lines, which are written in
the target encoding directly (text pools are pre-encoded, every other field is ASCII).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EVENT_WINDOW", "TABLES", "GenerateSummary", "generate"]

TABLES = ("CUSTOMER", "ACCOUNT", "BALANCE", "TXN", "LOAN", "FX_RATE")
EVENT_WINDOW = (date(2020, 1, 1), date(2035, 12, 31))

# Accepted spellings → (name written in the .ok file, Python codec).
_ENCODINGS = {"GBK": ("GBK", "gbk"), "UTF-8": ("UTF-8", "utf-8"), "UTF8": ("UTF-8", "utf-8")}

_SLOTS = 5  # accounts per customer at most; slot 0 is always the customer's CNY current account
_ROWS_PER_CHUNK = 1_000_000  # lines joined per Arrow call: keeps 32-bit offsets and memory in bounds
_FAR = 10**7  # an ordinal beyond every date: "never"

_W0, _W1 = EVENT_WINDOW[0].toordinal(), EVENT_WINDOW[1].toordinal()
_CUST_OPEN = (date(1998, 1, 1).toordinal(), date(2019, 12, 31).toordinal())
_AGE_REF = date(2026, 1, 1).toordinal()
_UNIX0 = date(1970, 1, 1).toordinal()

# ------------------------------------------------------------------------------------------------ codes

_CUST_TYPES = ("P", "C", "I", "F")
_PRODUCTS = ("CASA", "TD", "WM", "FUND", "INS", "GOLD", "LOAN", "CARD")
CASA, TD, WM, FUND, INS, GOLD, LOAN, CARD = range(8)
_CCYS = ("CNY", "USD", "EUR", "HKD", "JPY", "GBP")
_FX_BASE = np.array([1.0, 7.10, 7.80, 0.91, 0.047, 9.10])
_TXN_TYPES = ("DEP", "WDL", "TRI", "TRO", "PAY", "SAL", "FEE", "INT", "XBI", "XBO")
DEP, WDL, TRI, TRO, PAY, SAL, FEE, INT, XBI, XBO = range(10)
_CHANNELS = ("BR", "ATM", "MB", "IB", "POS", "SYS")
BR, ATM, MB, IB, POS, SYS = range(6)
_LOAN_TYPES = ("MTG", "CON", "BIZ", "CRD")
MTG, CON, BIZ, CRD = range(4)
_INDUSTRIES = tuple(chr(c) for c in range(ord("A"), ord("T") + 1))
_OCCUPATIONS = ("", "ACC", "LAW", "DOC", "TEA", "CIV", "ENG", "OTH")
_EDUCATION = ("", "1", "2", "3", "4")
_STATUS = ("A", "D", "C")
_KYC = ("L", "M", "H")
_CERT_TYPES = ("01", "02", "20")
_HIGH_RISK = ("KP", "IR", "MM")
_COUNTRIES = ("", "CN", "HK", "US", "SG", "JP", "GB", "DE", "AU", "CA", "MO", "KR", "FR", "CH", "AE",
              "MY", "TH", "VN", *_HIGH_RISK)
# Cross-border counterparties; the high-risk tail (KP, IR, MM) is deliberately small but present.
_XB_COUNTRY_P = np.array([0, 0, 28, 18, 9, 7, 6, 5, 5, 4, 4, 4, 3, 2, 2, 2, 2, 2, 0.3, 0.4, 0.6])

# ------------------------------------------------------------------------------------------- name pools

_SURNAMES = ("王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 "
             "冯 邓 曹 彭 曾 肖 田 董 袁 潘 于 蒋 蔡 余 杜 叶 程 苏 魏 吕 丁 任 沈 姚 卢 姜 崔 钟 "
             "谭 陆 汪 范 金 石 廖 贾 夏 韦 付 方 白 邹 孟 熊 秦 邱 江 尹 薛 闫 段 雷 侯 龙 史 陶 "
             "黎 贺 顾 毛 郝 龚 邵 万 钱 严 覃 武 戴 莫 孔 向 汤 欧阳 司马 诸葛 上官").split()
# 珅 (GBK AB 7C) and 瑋 (AC 7C) have `|` as their second GBK byte: consumers must decode before splitting.
# 堃 喆 珺 祎 玥 are GBK but not GB2312, so a GB2312 decoder fails on them.
_GIVEN = ("伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀 霞 平 刚 桂 英 华 玉 兰 萍 "
          "红 鹏 辉 建 文 飞 斌 宇 浩 凯 健 俊 帆 帅 旭 宁 龙 林 欣 佳 怡 雪 梅 琳 晨 阳 子 涵 "
          "轩 博 思 雨 梓 睿 诗 一 嘉 泽 宏 志 国 海 峰 波 鑫 淑 婷 颖 倩 慧 晶 燕 琴 云 亮 成 "
          "德 民 春 荣 新 晓 天 瑞 铭 珊 瑶 璐 昊 然 毅 诚 彬 翔 薇 蕾 玲 珍 凤 洁 楠 蓉 月 莉 "
          "坤 东 生 福 祥 玮 堃 喆 珺 祎 玥 珅 瑋").split()
_GIVEN_W = np.array([10.0] * (len(_GIVEN) - 2) + [40.0, 8.0])  # 珅 frequent enough for tiny samples
_CITIES = ("北京 上海 广州 深圳 杭州 南京 苏州 成都 武汉 西安 重庆 天津 长沙 郑州 青岛 宁波 "
           "厦门 合肥 济南 福州 昆明 沈阳 大连 东莞 佛山 无锡").split()
_BRANDS = ("华信 中天 金鼎 恒通 瑞丰 宏达 鑫源 博远 嘉禾 新元 永泰 盛世 远航 天成 东方 同创 "
           "正泰 明辉 安泰 德润 海纳 星河 腾飞 锦程 宇通 云帆 卓越 信达 和瑞 银河 汇通 鼎盛 "
           "长青 立信 华瑞 中联").split()
# Corporate name words by GB/T 4754 section, so a name matches its industry_code.
_CORP_WORDS = {
    "A": "农业科技 生态农业 畜牧",
    "B": "矿业 矿产资源",
    "C": "机械制造 电子 精密机械 新材料 食品 纺织 化工 汽车零部件",
    "D": "能源 电力 燃气",
    "E": "建设工程 建筑 装饰工程",
    "F": "贸易 商贸 进出口 供应链管理",
    "G": "物流 运输 国际货运代理",
    "H": "餐饮管理 酒店管理",
    "I": "科技 信息技术 网络科技 软件",
    "K": "置业 房地产开发 物业管理",
    "L": "商务咨询 投资管理 人力资源 广告",
    "M": "检测技术 生物科技 设计",
    "N": "环保科技 水务",
    "O": "家政服务",
    "R": "文化传媒 影视",
}
_CORP_INDUSTRY_W = {"A": 3, "B": 1, "C": 25, "D": 2, "E": 8, "F": 22, "G": 5, "H": 4, "I": 10, "K": 5, "L": 8,
                    "M": 4, "N": 2, "O": 1, "R": 2}
_CORP_SUFFIX = ("有限公司", "股份有限公司", "有限责任公司")
_INST_WORDS = {
    "S": "财政局 教育局 人力资源和社会保障局 住房公积金管理中心 城市管理局 红十字会 慈善总会",
    "P": "第一中学 实验小学 职业技术学院 大学",
    "Q": "第一人民医院 中医院 妇幼保健院 疾病预防控制中心",
    "T": "国际组织驻华代表处",
}
_INST_INDUSTRY_W = {"S": 45, "P": 30, "Q": 24, "T": 1}
_FIN_WORDS = ("银行股份有限公司 农村商业银行股份有限公司 证券股份有限公司 信托有限责任公司 "
              "基金管理有限公司 财产保险股份有限公司 金融租赁有限公司 消费金融有限公司").split()
# Real county-level codes keep ID numbers and credit codes plausible.
_AREAS = np.array([110101, 110105, 310101, 310115, 440106, 440305, 330106, 320102, 320505, 510104, 420106,
                   610113, 500103, 120101, 430102, 410105, 370202, 330203, 350203, 340104])

# --------------------------------------------------------------------------------------- rng streams

# Static streams (day 0): one generator per attribute group so adding one never shifts the others.
(_S_TYPE, _S_OPEN, _S_PERSON, _S_NAME, _S_CERT, _S_CONTACT, _S_STATUS, _S_AUM, _S_SLOTS, _S_PRODUCT,
 _S_ACCT_DATES, _S_WEIGHTS, _S_DRIFT, _S_CARD, _S_LOAN, _S_ACTIVITY, _S_FX) = range(1, 18)
# Daily streams.
_D_BALANCE, _D_TXN, _D_FX, _D_BANK = range(1, 5)


def _rng(seed: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day, stream])


# ------------------------------------------------------------------------------------------ summary


@dataclass(frozen=True)
class GenerateSummary:
    """What generate() wrote: days, customers, and per-table record and byte totals over all days."""

    out_dir: Path
    days: int
    customers: int
    records: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- formatting
# Columns are Arrow binary arrays already in the target encoding; lines are joined with Arrow kernels.


def _fixed(chars: np.ndarray) -> pa.Array:
    """A binary column from an (n, width) uint8 matrix of characters, without copying."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an (n, width) uint8 matrix."""
    v = np.asarray(values, dtype=np.int64)
    out = np.empty((len(v), width), np.uint8)
    if width > 9:  # split so the digit loop runs on 32-bit integers, several times faster than 64-bit
        high, low = np.divmod(v, 10**9)
        out[:, : width - 9] = _digits(high, width - 9)
        out[:, width - 9:] = _digits(low, 9)
        return out
    v = v.astype(np.uint32)
    for k in reversed(range(width)):
        q = v // 10
        out[:, k] = v - q * 10 + 48
        v = q
    return out


def _prefixed(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    """IDs such as C0000000042: an ASCII prefix and zero-padded digits."""
    v = np.asarray(values)
    head = np.broadcast_to(np.frombuffer(prefix.encode(), np.uint8), (len(v), len(prefix)))
    return _fixed(np.hstack([head, _digits(v, width)]))


def _int_text(values: np.ndarray) -> pa.Array:
    return pc.cast(pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string()), pa.binary())


def _decimal(units: np.ndarray, places: int) -> pa.Array:
    """Non-negative fixed-point numbers from integer units (cents for places=2): always `places` decimals."""
    units = np.asarray(units, dtype=np.int64)
    scale = 10**places
    return pc.binary_join_element_wise(_int_text(units // scale), _fixed(_digits(units % scale, places)),
                                       b".")


def _ymd(ordinals: np.ndarray) -> np.ndarray:
    """Proleptic ordinals → integers YYYYMMDD."""
    days = (np.asarray(ordinals, dtype=np.int64) - _UNIX0).astype("datetime64[D]")
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    y = years.astype(np.int64) + 1970
    m = (months - years).astype(np.int64) + 1
    d = (days - months).astype(np.int64) + 1
    return y * 10000 + m * 100 + d


def _date_digits(ordinals: np.ndarray) -> np.ndarray:
    """YYYYMMDD characters as an (n, 8) uint8 matrix."""
    ordinals = np.asarray(ordinals, dtype=np.int64)
    lo, hi = (int(ordinals.min()), int(ordinals.max())) if len(ordinals) else (0, 0)
    if hi - lo < len(ordinals):  # many rows, fewer distinct days: format each day once, then look up
        return _digits(_ymd(np.arange(lo, hi + 1)), 8)[ordinals - lo]
    return _digits(_ymd(ordinals), 8)


def _date_text(ordinals: np.ndarray) -> pa.Array:
    return _fixed(_date_digits(ordinals))


def _pool(values: Sequence[str], codec: str) -> pa.Array:
    return pa.array([v.encode(codec) for v in values], pa.binary())


def _take(pool: pa.Array, idx: np.ndarray) -> pa.Array:
    return pc.take(pool, pa.array(np.asarray(idx, dtype=np.int32)))


def _blank_unless(mask: np.ndarray, column: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask), column, pa.scalar(b"", pa.binary()))


def _join(columns: Sequence[pa.Array | pa.Scalar], sep: bytes = b"|") -> pa.Array:
    return pc.binary_join_element_wise(*columns, sep)


def _choose(u: np.ndarray, probs: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """Categorical draws from uniforms u with weights probs, or with weights probs[group] row by row."""
    probs = np.asarray(probs, dtype=np.float64)
    if group is None:
        cdf = np.cumsum(probs)
        return np.searchsorted(cdf / cdf[-1], u, side="left").clip(0, len(probs) - 1)
    out = np.zeros(u.shape, np.int64)
    group = np.broadcast_to(group, u.shape)
    for k in np.unique(group):  # one vectorised draw per distinct weight row (types, not records)
        mask = group == k
        out[mask] = _choose(u[mask], probs[k])
    return out


def _write_table(path: Path, nrows: int, columns: list[pa.Array | pa.Scalar],
                 encoding: str) -> tuple[int, int]:
    """Write `|`-joined lines (the small last column carries the newline), then the .ok file last."""
    ok_path = path.with_suffix(".ok")
    # A stale control file would vouch for a half-written data file while we rewrite it.
    ok_path.unlink(missing_ok=True)
    md5 = hashlib.md5()
    size = 0
    *body, last = columns
    with open(path, "wb") as f:
        for lo in range(0, nrows, _ROWS_PER_CHUNK):
            hi = min(nrows, lo + _ROWS_PER_CHUNK)
            cols = [c if isinstance(c, pa.Scalar) else c.slice(lo, hi - lo) for c in body]
            tail = _join([last.slice(lo, hi - lo), pa.scalar(b"\n", pa.binary())], b"")
            lines = _join([*cols, tail]) if cols else tail
            _, offsets_buf, data_buf = lines.buffers()
            offsets = np.frombuffer(offsets_buf, dtype=np.int32)[lines.offset: lines.offset + len(lines) + 1]
            chunk = memoryview(data_buf)[int(offsets[0]): int(offsets[-1])]
            f.write(chunk)
            md5.update(chunk)
            size += len(chunk)
    tmp = ok_path.with_name(ok_path.name + ".tmp")
    tmp.write_text(f"{path.name}|{nrows}|{size}|{md5.hexdigest()}|{encoding}\n", encoding="ascii")
    os.replace(tmp, ok_path)  # the .ok appears whole or not at all
    return nrows, size


# --------------------------------------------------------------------------------------------- population


class _Population:
    """Static attributes of customers, accounts (n x 5 slots) and loans, plus the cached static text."""

    def __init__(self, n: int, seed: int, codec: str):
        self.n, self.seed = n, seed
        r = lambda stream: _rng(seed, 0, stream)  # noqa: E731 - a one-line shorthand
        idx = np.arange(n)
        self.cust_no = idx + 1

        # ---- customer type, dates, person attributes
        ctype = _choose(r(_S_TYPE).random(n), np.array([95.0, 3.8, 0.6, 0.6]))
        self.ctype = ctype
        is_p = ctype == 0
        g = r(_S_OPEN)
        lo, hi = _CUST_OPEN
        cust_open = lo + ((hi - lo) * g.random(n) ** 0.7).astype(np.int64)  # skewed to recent years
        gp = r(_S_PERSON)
        # Age on 2026-01-01, at least 25 so everybody was an adult when opening (before 2020). Out-of-range
        # draws are redrawn uniformly rather than clipped, which would pile people up on one birthday.
        age = gp.normal(45, 14, n)
        age = np.where((age < 25) | (age > 90), gp.uniform(25, 60, n), age)
        birth = (_AGE_REF - age * 365.25).astype(np.int64)
        cust_open = np.where(is_p, np.maximum(cust_open, birth + 18 * 366), cust_open)
        self.cust_open = cust_open
        male = gp.random(n) < 0.5
        education = np.where(is_p, _choose(gp.random(n), np.array([8.0, 45, 35, 10, 2])), 0)
        occupation = np.where(is_p, _choose(gp.random(n), np.array([13.0, 5, 2, 4, 8, 8, 15, 45])), 0)
        z_wealth = gp.standard_normal(n)
        # Income and wealth share a factor (correlation ~0.5) so tiers and incomes look related.
        income_z = 0.5 * z_wealth + np.sqrt(0.75) * gp.standard_normal(n)
        income = np.round(8000 * np.exp(0.6 * income_z), -1) * 100  # cents, whole tens of yuan
        has_income = is_p & (gp.random(n) >= 0.15)

        # ---- status, closing, risk
        gs = r(_S_STATUS)
        dormant_p = np.array([0.07, 0.05, 0.02, 0.02])[ctype]
        self.dormant = gs.random(n) < dormant_p
        closing = gs.random(n) < 0.03
        self.cust_close = np.where(closing, gs.integers(_W0 + 60, _W1 + 1, n), _FAR)
        kyc = np.where(is_p, _choose(gs.random(n), np.array([85.0, 12, 3])),
                       _choose(gs.random(n), np.array([75.0, 19, 6])))

        # ---- wealth (CNY) by customer type: heavy-tailed log-normal levels
        ga = r(_S_AUM)
        median = np.array([58_000.0, 2_000_000, 5_000_000, 20_000_000])[ctype]
        sigma = np.array([1.75, 2.0, 1.6, 1.8])[ctype]
        aum = median * np.exp(sigma * np.where(is_p, z_wealth, ga.standard_normal(n)))
        aum = np.minimum(aum, np.array([3e8, 8e9, 5e9, 1e10])[ctype])
        empty = (self.dormant & (ga.random(n) < 0.4)) | (is_p & (ga.random(n) < 0.02))
        aum = np.where(self.dormant, aum * 0.02, aum)
        self.aum = np.where(empty, 0.0, aum)

        # ---- daily drift: two sinusoids per customer (a slow trend and a monthly-ish swing); closed form,
        # so any day is computable alone, and bounded, so levels never run away outside the window.
        gd = r(_S_DRIFT)
        self.drift_a1 = gd.uniform(0.05, 0.5, n)
        self.drift_w1 = 2 * np.pi / gd.uniform(120, 900, n)
        self.drift_p1 = gd.uniform(0, 2 * np.pi, n)
        self.drift_a2 = gd.uniform(0, 0.12, n)
        self.drift_w2 = 2 * np.pi / gd.uniform(20, 70, n)
        self.drift_p2 = gd.uniform(0, 2 * np.pi, n)

        # ---- accounts: n x 5 slots
        gsl = r(_S_SLOTS)
        n_acct = 1 + _choose(gsl.random(n), np.array([[25.0, 30, 25, 13, 7], [10, 25, 30, 20, 15],
                                                      [30, 30, 20, 10, 10], [20, 30, 20, 15, 15]]), ctype)
        # Share of customers holding a loan slot; only part of the loans are live on a given day.
        self.has_loan = gsl.random(n) < np.array([0.32, 0.85, 0.2, 0.12])[ctype]
        n_acct = np.where(self.has_loan & (n_acct == 1), 2, n_acct)
        slot = np.arange(_SLOTS)
        valid = slot[None, :] < n_acct[:, None]
        gpr = r(_S_PRODUCT)
        prod_p = np.array([
            # CASA TD  WM FUND INS GOLD LOAN CARD
            [10.0, 25, 18, 12, 8, 4, 0, 23],
            [35, 35, 25, 5, 0, 0, 0, 0],
            [40, 50, 10, 0, 0, 0, 0, 0],
            [40, 40, 10, 10, 0, 0, 0, 0],
        ])
        product = _choose(gpr.random((n, _SLOTS)), prod_p, ctype[:, None])
        product[:, 0] = CASA
        loan_slot = n_acct - 1
        is_loan_slot = self.has_loan[:, None] & (slot[None, :] == loan_slot[:, None])
        product = np.where(is_loan_slot, LOAN, product)
        ccy_p = np.array([[86.0, 7, 2, 3, 1, 1], [80.0, 12, 3, 3, 1, 1]])
        ccy = _choose(gpr.random((n, _SLOTS)), ccy_p, (~is_p)[:, None].astype(np.int64))
        ccy = np.where(np.isin(product, [CASA, TD, WM]), ccy, 0)
        ccy[:, 0] = 0

        # ---- account dates: old accounts before the window, some opening and some closing inside it
        gdt = r(_S_ACCT_DATES)
        old_open = cust_open[:, None] + (gdt.random((n, _SLOTS)) * (_CUST_OPEN[1] - cust_open)[:, None])
        new_open = gdt.integers(_W0, _W1 + 1, (n, _SLOTS))
        opens_in_window = gdt.random((n, _SLOTS)) < 0.3
        acct_open = np.where(opens_in_window, new_open, old_open.astype(np.int64))
        closes = gdt.random((n, _SLOTS)) < 0.25
        close = gdt.integers(_W0, _W1 + 1, (n, _SLOTS))
        close = np.where(close <= acct_open + 30, acct_open + gdt.integers(90, 1500, (n, _SLOTS)), close)
        acct_close = np.where(closes, close, _FAR)
        acct_open[:, 0] = cust_open
        acct_close[:, 0] = _FAR

        # ---- loans (one per loan-holding customer, on its own LOAN account)
        gl = r(_S_LOAN)
        ltype_p = np.array([[45.0, 40, 0, 15], [0, 0, 85, 15], [0, 0, 100, 0], [0, 0, 100, 0]])
        ltype = _choose(gl.random(n), ltype_p, ctype)
        term_lo = np.array([10, 1, 1, 1])[ltype]
        term_hi = np.array([30, 5, 10, 3])[ltype]
        term = (gl.integers(term_lo, term_hi + 1) * 365.25).astype(np.int64)
        # Mortgages and consumer loans are single contracts; starts spread so that, inside the window, the
        # share of live loans stays roughly constant. Business loans and credit lines roll over: a new
        # contract (new loan_id, same LOAN account) every term, until the facility ends.
        self.loan_renews = np.isin(ltype, [BIZ, CRD])
        single_start = np.maximum(gl.integers(_W0 - term, _W1 + 1), cust_open + 30)
        facility_start = gl.integers(cust_open + 30, _W1 + 1)
        start = np.where(self.loan_renews, facility_start, single_start)
        prepay = start + (term * gl.uniform(0.2, 0.95, n)).astype(np.int64)
        not_renewed = start + term * gl.integers(1, 6, n)
        end_draw = gl.random(n)
        loan_end = np.where(self.loan_renews, np.where(end_draw < 0.15, not_renewed, _FAR),
                            np.where(end_draw < 0.12, prepay, start + term))
        z = gl.standard_normal(n)
        principal = np.select(
            [ltype == MTG, ltype == CON, (ltype == CRD) & is_p, ltype == CRD],
            [np.round(800_000 * np.exp(0.5 * z), -4), np.round(80_000 * np.exp(0.7 * z), -3),
             np.round(100_000 * np.exp(0.6 * z), -4), np.round(1_000_000 * np.exp(0.8 * z), -4)],
            np.round(np.clip(np.maximum(self.aum * gl.uniform(0.3, 3.0, n), 500_000), 0, 2e9), -4))
        principal = np.maximum(principal, 1000.0)
        loan_ccy = np.where((ltype == BIZ) & (gl.random(n) < 0.08), 1, 0)
        self.loan_bullet = (ltype == BIZ) & (gl.random(n) < 0.5)
        self.loan_util = gl.beta(2, 3, n)
        self.loan_phase = gl.uniform(0, 2 * np.pi, n)
        # Arrears come in recurring episodes: dpd = days into an episode, a closed form of the day.
        cls = _choose(gl.random(n), np.array([86.0, 9, 3.5, 1.5]))
        ep_len = np.select([cls == 1, cls == 2, cls == 3],
                           [gl.integers(1, 31, n), gl.integers(31, 90, n), gl.integers(90, 400, n)], 0)
        ep_cycle = np.select([cls == 1, cls == 2], [gl.integers(120, 361, n), gl.integers(180, 541, n)],
                             ep_len + gl.integers(60, 301, n))
        self.ep_len, self.ep_cycle = ep_len, ep_cycle
        self.ep_phase = (gl.random(n) * ep_cycle).astype(np.int64)
        self.loan_special = gl.random(n)
        rows = np.flatnonzero(self.has_loan)
        cols = loan_slot[rows]
        acct_open[rows, cols] = start[rows]
        acct_close[rows, cols] = loan_end[rows]
        ccy[rows, cols] = loan_ccy[rows]

        # ---- a closing customer's accounts close first (current account the day before), loans repaid
        offset = gdt.integers(2, 46, (n, _SLOTS))
        offset[:, 0] = 1
        limit = self.cust_close[:, None] - offset
        acct_close = np.where(closing[:, None], np.minimum(acct_close, limit), acct_close)
        valid &= acct_open < acct_close  # opened on or after its forced close: never existed

        self.valid, self.product, self.ccy = valid, product, ccy
        self.acct_open, self.acct_close = acct_open, acct_close
        self.loan_slot, self.ltype = loan_slot, ltype
        self.principal_cents = (principal * 100).astype(np.int64)
        self.loan_start, self.loan_term = start, term
        self.has_loan &= valid[np.arange(n), loan_slot] & (product[np.arange(n), loan_slot] == LOAN)

        # ---- balance split over asset accounts
        gw = r(_S_WEIGHTS)
        pw = np.array([1.0, 1.6, 1.6, 1.0, 0.8, 0.3, 0.0, 0.0])[product]
        w = gw.gamma(1.0, 1.0, (n, _SLOTS)) * pw * valid
        w[:, 0] = np.maximum(w[:, 0], 1e-3)  # everybody keeps something in the current account
        w /= w.sum(1, keepdims=True)
        self.base_ccy = self.aum[:, None] * w / _FX_BASE[ccy]  # in the account's currency
        gc = r(_S_CARD)
        # Card terms per customer (a second card shares them): limit, utilisation, billing-cycle phase.
        self.card_limit = np.round(30_000 * np.exp(0.6 * gc.standard_normal(n)), -3)
        self.card_util = np.where(gc.random(n) < 0.35, 0.0, gc.beta(1.5, 4, n))
        self.card_phase = gc.integers(0, 30, n)

        # ---- activity: Poisson rates per customer, salary day
        gv = r(_S_ACTIVITY)
        seg = _choose(gv.random(n), np.array([15.0, 30, 55]))
        rate = np.select([seg == 1, seg == 2], [gv.uniform(0.01, 0.08, n), gv.uniform(0.25, 1.2, n)], 0.0)
        rate = np.select([ctype == 1, ctype == 2, ctype == 3],
                         [gv.uniform(0.5, 6, n), gv.uniform(0.3, 3, n), gv.uniform(0.5, 4, n)], rate)
        self.txn_rate = np.where(self.dormant, 0.0, rate)
        salaried = is_p & (seg > 0) & ~self.dormant & (age < 62) & (gv.random(n) < 0.65)
        self.payday = np.where(salaried, np.array([5, 10, 15, 20, 25, 28])[gv.integers(0, 6, n)], 0)
        self.salary_cents = np.where(has_income, income, 700_000) * gv.uniform(0.75, 0.85, n)
        self.amount_scale = np.array([1.0, 20.0, 10.0, 50.0])[ctype]
        first_slot = lambda mask: np.where(mask.any(1), mask.argmax(1), -1)  # noqa: E731
        self.card_slot = first_slot(valid & (product == CARD))
        self.fx_slot = first_slot(valid & (product == CASA) & (ccy != 0))

        # ---- FX: slow and medium sinusoids per currency
        gf = r(_S_FX)
        k = len(_CCYS)
        self.fx_a = np.stack([gf.uniform(0.01, 0.04, k), gf.uniform(0.003, 0.01, k)])
        self.fx_w = 2 * np.pi / np.stack([gf.uniform(400, 900, k), gf.uniform(40, 90, k)])
        self.fx_p = gf.uniform(0, 2 * np.pi, (2, k))

        # ---- static text, built once and reused every day
        self._static_text(codec, ctype, is_p, male, birth, education, occupation, income, has_income, kyc)

    def _static_text(self, codec, ctype, is_p, male, birth, education, occupation, income, has_income, kyc):
        n = self.n
        r = lambda stream: _rng(self.seed, 0, stream)  # noqa: E731
        self.codec = codec
        gn = r(_S_NAME)
        # Personal names: surname + one or two given characters.
        sur_w = 1.0 / (np.arange(len(_SURNAMES)) + 5)
        surname = _choose(gn.random(n), sur_w)
        given1 = _choose(gn.random(n), _GIVEN_W)
        given2 = np.where(gn.random(n) < 0.7, 1 + _choose(gn.random(n), _GIVEN_W), 0)
        given = _pool(_GIVEN, codec)
        given_or_none = pa.concat_arrays([pa.array([b""], pa.binary()), given])
        pname = _join([_take(_pool(_SURNAMES, codec), surname), _take(given, given1),
                       _take(given_or_none, given2)], b"")
        # Corporate, institution and financial names, each matching the customer's industry code.
        cities, brands = _pool(_CITIES, codec), _pool(_BRANDS, codec)
        city = gn.integers(0, len(_CITIES), n)
        brand = gn.integers(0, len(_BRANDS), n)
        industry = np.full(n, -1)

        def words(table: dict[str, str], weights: dict[str, int], mask: np.ndarray) -> np.ndarray:
            letters = list(weights)
            ind = _choose(gn.random(n), np.array([weights[x] for x in letters], dtype=float))
            industry[mask] = np.array([_INDUSTRIES.index(x) for x in letters])[ind[mask]]
            flat = [w for x in letters for w in table[x].split()]
            starts = np.cumsum([0] + [len(table[x].split()) for x in letters])
            sizes = np.diff(starts)
            pick = starts[ind] + (gn.random(n) * sizes[ind]).astype(np.int64)
            return _take(_pool(flat, codec), pick)

        cword = words(_CORP_WORDS, _CORP_INDUSTRY_W, ctype == 1)
        suffix = _take(_pool(_CORP_SUFFIX, codec), _choose(gn.random(n), np.array([70.0, 15, 15])))
        # A third brand character from the given-name pool makes most company names unique.
        extra = np.where(gn.random(n) < 0.7, 1 + gn.integers(0, len(_GIVEN), n), 0)
        cname = _join([_take(cities, city), _take(brands, brand), _take(given_or_none, extra), cword, suffix],
                      b"")
        iword = words(_INST_WORDS, _INST_INDUSTRY_W, ctype == 2)
        iname = _join([_take(cities, city), iword], b"")
        fword = _take(_pool(_FIN_WORDS, codec), gn.integers(0, len(_FIN_WORDS), n))
        fhead = pc.if_else(pa.array(gn.random(n) < 0.3), _take(cities, city), _take(brands, brand))
        fname = _join([fhead, fword], b"")
        industry[ctype == 3] = _INDUSTRIES.index("J")
        name = pc.if_else(pa.array(ctype == 2), iname, fname)
        name = pc.if_else(pa.array(ctype == 0), pname, pc.if_else(pa.array(ctype == 1), cname, name))

        # Certificates: ID card numbers with their ISO 7064 check digit, passports, social credit codes.
        gc = r(_S_CERT)
        passport = is_p & (gc.random(n) < 0.03)
        cert_type = np.where(is_p, np.where(passport, 1, 0), 2)
        area = _AREAS[gc.integers(0, len(_AREAS), n)]
        seq = _id_sequence(birth * 100 + np.searchsorted(np.sort(_AREAS), area), male, gc)
        body = np.hstack([_digits(area, 6), _date_digits(birth), _digits(seq, 3)])
        weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
        check = np.frombuffer(b"10X98765432", np.uint8)[((body - 48) @ weights) % 11]
        id_card = np.hstack([body, check[:, None]])
        # index * odd non-multiple of 5, mod 10^8, is a permutation: numbers look random yet never repeat.
        unique8 = (self.cust_no * 48_271 + self.seed) % 10**8
        passport_no = np.hstack([np.full((n, 1), ord("E"), np.uint8), _digits(unique8, 8)])
        uscc_head = np.select([ctype == 2], [np.where(gc.random(n) < 0.7, 12, 51)], 91)
        org = _digits((unique8 * 7_919 + 12_345_678) % 10**8, 8)
        org_check = 11 - ((org - 48) @ np.array([3, 7, 9, 10, 5, 8, 4, 2])) % 11
        org_check = np.where(org_check == 10, ord("X"), np.where(org_check == 11, 48, org_check + 48))
        uscc17 = np.hstack([_digits(uscc_head, 2), _digits(area, 6), org,
                            org_check[:, None].astype(np.uint8)])
        alphabet = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", np.uint8)
        lookup = np.zeros(256, np.int64)
        lookup[alphabet] = np.arange(31)
        uscc_w = np.array([pow(3, i, 31) for i in range(17)])
        c18 = (31 - (lookup[uscc17] @ uscc_w) % 31) % 31
        uscc = np.hstack([uscc17, alphabet[c18][:, None]])
        cert_no = pc.if_else(pa.array(cert_type == 0), _fixed(id_card),
                             pc.if_else(pa.array(cert_type == 1), _fixed(passport_no), _fixed(uscc)))

        gm = r(_S_CONTACT)
        second = np.array([3, 5, 7, 8, 9, 6, 4])
        second = second[_choose(gm.random(n), np.array([30.0, 25, 10, 20, 10, 3, 2]))]
        mobile = _fixed(np.hstack([np.full((n, 1), ord("1"), np.uint8), _digits(second, 1),
                                   _digits(gm.integers(0, 10**9, n), 9)]))
        has_mobile = np.where(is_p, gm.random(n) >= 0.05, gm.random(n) < 0.6)
        n_branches = 240
        branch = (n_branches * gm.random(n) ** 2).astype(np.int64) + 1  # a few big branches, a long tail

        ascii_pool = lambda values: _pool(values, "ascii")  # noqa: E731
        self.cust_id = _prefixed("C", self.cust_no, 10)
        columns = [
            self.cust_id,
            _take(ascii_pool(_CUST_TYPES), ctype),
            name,
            _take(ascii_pool(_CERT_TYPES), cert_type),
            cert_no,
            _blank_unless(has_mobile, mobile),
            _blank_unless(is_p, _date_text(birth)),
            _blank_unless(is_p, _take(ascii_pool(("F", "M")), male.astype(np.int64))),
            _take(ascii_pool(_EDUCATION), education),
            _take(ascii_pool(_OCCUPATIONS), occupation),
            _blank_unless(has_income, _decimal(income, 2)),
            _take(ascii_pool(("", *_INDUSTRIES)), industry + 1),
            _prefixed("B", branch, 4),
            _date_text(self.cust_open),
            _take(ascii_pool(_KYC), kyc),
        ]
        self.customer_prefix = _join(columns)

        # Account text over valid slots, in (customer, slot) order.
        vi, vk = np.nonzero(self.valid)
        self.acct_rows = (vi, vk)
        self.acct_flat = vi * _SLOTS + vk
        acct_no = self.cust_no[vi] * 100 + vk
        self.acct_id = _prefixed("6222", acct_no, 12)
        self.acct_ccy = _take(ascii_pool(_CCYS), self.ccy[vi, vk])
        self.account_prefix = _join([self.acct_id, pc.take(self.cust_id, pa.array(vi)),
                                     _take(ascii_pool(_PRODUCTS), self.product[vi, vk]), self.acct_ccy,
                                     _date_text(self.acct_open[vi, vk])])
        # Position of each (customer, slot) in the valid-account arrays, -1 when the slot is unused.
        self.acct_pos = np.full(self.n * _SLOTS, -1, np.int64)
        self.acct_pos[self.acct_flat] = np.arange(len(vi))


def _id_sequence(group: np.ndarray, male: np.ndarray, g: np.random.Generator) -> np.ndarray:
    """ID-card sequence digits, unique within (birth date, area, gender) and odd for men, as on real cards."""
    n = len(group)
    order = np.lexsort((male, group))
    key = group[order] * 2 + male[order]
    first = np.maximum.accumulate(np.where(np.r_[True, key[1:] != key[:-1]], np.arange(n), 0))
    offset = 2 * g.integers(0, 500, n)  # each group starts at its own random even number
    seq = np.empty(n, np.int64)
    seq[order] = (offset[order][first] + 2 * (np.arange(n) - first)) % 1000 + male[order]
    return seq


# ------------------------------------------------------------------------------------------------- a day


def _fx_rates(pop: _Population, d: int) -> np.ndarray:
    """CNY per unit for every currency on day d (index 0, CNY, is 1), rounded to 6 places."""
    eps = _rng(pop.seed, d, _D_FX).standard_normal(len(_CCYS))
    log = (pop.fx_a * np.sin(pop.fx_w * d + pop.fx_p)).sum(0) + 0.002 * eps
    micro = np.round(_FX_BASE * np.exp(log) * 1e6)
    micro[0] = 1e6
    return micro.astype(np.int64)


def _balances(pop: _Population, d: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """End-of-day balance in cents of the given open accounts (customer rows, slots)."""
    eps = _rng(pop.seed, d, _D_BALANCE).standard_normal((pop.n, _SLOTS))[rows, cols]
    prod = pop.product[rows, cols]
    # Time deposits and insurance move in quarterly steps (rollovers), not daily.
    t = np.where(np.isin(prod, [TD, INS]), d - d % 91, d).astype(np.float64)
    drift = (pop.drift_a1[rows] * np.sin(pop.drift_w1[rows] * t + pop.drift_p1[rows])
             + pop.drift_a2[rows] * np.sin(pop.drift_w2[rows] * t + pop.drift_p2[rows]))
    noise_sd = np.array([0.08, 0.0, 0.002, 0.012, 0.0, 0.01, 0.0, 0.05])[prod]
    asset = pop.base_ccy[rows, cols] * np.exp(drift) * np.maximum(1 + noise_sd * eps, 0.05)
    # Card debt builds over the 30-day billing cycle and is repaid after the statement.
    cycle = ((d + pop.card_phase[rows]) % 30) / 29
    card = pop.card_limit[rows] * pop.card_util[rows] * (0.5 + 0.5 * cycle) * np.maximum(1 + 0.05 * eps, 0)
    cents = np.round(np.where(prod == CARD, card, asset) * 100)
    cents = np.where(prod == LOAN, _outstanding(pop, d, rows), cents)
    return np.maximum(cents, 0).astype(np.int64)


def _loan_cycle(pop: _Population, d: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The contract live on day d: its start, maturity and renewal number (0 for single contracts)."""
    start, term = pop.loan_start[rows], pop.loan_term[rows]
    cycle = np.where(pop.loan_renews[rows], np.maximum(d - start, 0) // term, 0)
    start = start + cycle * term
    return start, start + term, cycle


def _outstanding(pop: _Population, d: int, rows: np.ndarray) -> np.ndarray:
    """Outstanding loan principal in cents on day d: amortising, bullet or revolving."""
    principal = pop.principal_cents[rows]
    start, maturity, _ = _loan_cycle(pop, d, rows)
    elapsed = np.clip((d - start) / np.maximum(maturity - start, 1), 0, 1)
    amortising = principal * (1 - elapsed**1.5)  # annuity-like: slow at first
    swing = np.sin(2 * np.pi * d / 90 + pop.loan_phase[rows])
    revolving = principal * pop.loan_util[rows] * (0.7 + 0.3 * swing)
    ltype = pop.ltype[rows]
    out = np.where(ltype == CRD, revolving, np.where(pop.loan_bullet[rows], principal, amortising))
    return np.clip(np.round(out), 0, principal).astype(np.int64)


def _dpd(pop: _Population, d: int, rows: np.ndarray) -> np.ndarray:
    pos = (d + pop.ep_phase[rows]) % pop.ep_cycle[rows]
    return np.where(pos < pop.ep_len[rows], pos + 1, 0)


def _five_class(dpd: np.ndarray, special: np.ndarray) -> np.ndarray:
    return np.select([dpd >= 360, dpd >= 180, dpd >= 90, (dpd >= 60) & (special < 0.3), dpd >= 1,
                      special < 0.03], [5, 4, 3, 3, 2, 2], 1)


def _transactions(pop: _Population, d: int, day: date, is_open: np.ndarray, cents_by_slot: np.ndarray):
    """The day's postings: customer activity (Poisson per customer), salaries, fees and interest."""
    n = pop.n
    g = _rng(pop.seed, d, _D_TXN)
    weekend = day.weekday() >= 5
    lam = pop.txn_rate * np.where(pop.ctype == 0, 0.8, 0.2) if weekend else pop.txn_rate
    active = is_open[:, 0]
    counts = g.poisson(np.where(active, lam, 0.0))
    cust = np.repeat(np.arange(n), counts)
    m = len(cust)
    ctype = pop.ctype[cust]
    type_p = np.array([
        # DEP WDL TRI TRO PAY SAL FEE INT XBI XBO
        [10.0, 10, 12, 15, 45, 0, 0, 0, 1, 1.5],
        [8, 5, 30, 35, 15, 0, 0, 0, 3.5, 3.5],
        [5, 3, 40, 37, 13, 0, 0, 0, 1, 1],
        [3, 2, 45, 40, 5, 0, 0, 0, 2.5, 2.5],
    ])
    ttype = _choose(g.random(m), type_p, ctype)

    # Salaries: a fixed payday per salaried customer.
    sal_cust = np.flatnonzero((pop.payday == day.day) & active)
    cust = np.concatenate([cust, sal_cust])
    ttype = np.concatenate([ttype, np.full(len(sal_cust), SAL)])
    ctype = pop.ctype[cust]
    m = len(cust)

    chan_p = np.array([
        # BR ATM MB IB POS SYS
        [55.0, 40, 5, 0, 0, 0],  # DEP
        [35, 65, 0, 0, 0, 0],  # WDL
        [15, 0, 60, 25, 0, 0],  # TRI
        [15, 0, 60, 25, 0, 0],  # TRO
        [0, 0, 40, 10, 50, 0],  # PAY
        [20, 0, 0, 80, 0, 0],  # SAL
        [0, 0, 0, 0, 0, 1],  # FEE
        [0, 0, 0, 0, 0, 1],  # INT
        [40, 0, 15, 45, 0, 0],  # XBI
        [40, 0, 15, 45, 0, 0],  # XBO
    ])
    channel = _choose(g.random(m), chan_p, ttype)
    cash = np.isin(ttype, [DEP, WDL]) & ((channel == ATM) | ((channel == BR) & (g.random(m) < 0.95)))

    median = np.array([2000.0, 1000, 3000, 2500, 150, 0, 0, 0, 20000, 15000])[ttype]
    sd = np.array([1.0, 0.9, 1.2, 1.2, 1.1, 0, 0, 0, 1.2, 1.2])[ttype]
    # Organisations move larger sums, but mostly electronically: their cash amounts scale much less.
    scale = np.where(cash, np.array([1.0, 3.0, 2.0, 2.0])[ctype], pop.amount_scale[cust])
    amount = median * scale * np.exp(sd * g.standard_normal(m))
    atm_wdl = (ttype == WDL) & (channel == ATM)
    amount = np.where(atm_wdl, np.clip(np.round(amount, -2), 100, 20_000), amount)
    # Large cash deposits (≥ 50 000, reportable) and some just below the threshold.
    big = g.random(m)
    cash_dep = (ttype == DEP) & cash & (channel == BR)
    amount = np.where(cash_dep & (big < 0.02), np.round(g.uniform(50_000, 300_000, m), -2), amount)
    just_below = cash_dep & (big >= 0.02) & (big < 0.03)
    amount = np.where(just_below, np.round(g.uniform(45_000, 49_900, m), -2), amount)
    salary = pop.salary_cents[cust] / 100 * np.exp(0.03 * g.standard_normal(m))
    amount = np.where(ttype == SAL, salary, amount)

    # Which account: the current account, a credit card for card payments, a foreign account cross-border.
    slot = np.zeros(m, np.int64)
    card = pop.card_slot[cust]
    card_ok = (card >= 0) & is_open[cust, np.maximum(card, 0)]
    slot = np.where((ttype == PAY) & np.isin(channel, [POS, MB]) & card_ok & (g.random(m) < 0.7), card, slot)
    fxs = pop.fx_slot[cust]
    fx_ok = (fxs >= 0) & is_open[cust, np.maximum(fxs, 0)]
    slot = np.where(np.isin(ttype, [XBI, XBO]) & fx_ok & (g.random(m) < 0.8), fxs, slot)

    country = np.zeros(m, np.int64)
    xb = np.isin(ttype, [XBI, XBO])
    xb_country = _choose(g.random(m), _XB_COUNTRY_P)
    transfer_country = np.where(g.random(m) < 0.9, 1, xb_country)  # mostly domestic counterparties
    country = np.where(xb, xb_country, country)
    country = np.where(np.isin(ttype, [TRI, TRO]) & (g.random(m) < 0.08), transfer_country, country)

    # Times: counters keep business hours, electronic channels peak in the afternoon, salaries morning.
    secs = np.where(g.random(m) < 0.75, g.normal(14.5 * 3600, 3.5 * 3600, m), g.uniform(0, 86_400, m))
    secs = np.where(channel == BR, g.uniform(9 * 3600, 17 * 3600, m), secs)
    secs = np.where(ttype == SAL, g.uniform(9 * 3600, 12 * 3600, m), secs)

    # Customer amounts were drawn in CNY: express them in the account's currency.
    amount = amount / _FX_BASE[pop.ccy[cust, slot]]

    # Bank postings (channel SYS): small fees at random, quarterly interest on the 21st of Mar/Jun/Sep/Dec.
    gb = _rng(pop.seed, d, _D_BANK)
    fee_rows, fee_cols = np.nonzero(is_open & np.isin(pop.product, [CASA, CARD]))
    pick = gb.random(len(fee_rows)) < 0.002
    fee_rows, fee_cols = fee_rows[pick], fee_cols[pick]
    fee = np.array([1.0, 2, 5, 10, 20, 50, 100])[_choose(gb.random(len(fee_rows)),
                                                        np.array([10.0, 20, 25, 20, 12, 8, 5]))]
    parts = [(fee_rows, fee_cols, FEE, fee / _FX_BASE[pop.ccy[fee_rows, fee_cols]],
              gb.uniform(2 * 3600, 4 * 3600, len(fee_rows)))]
    if day.month in (3, 6, 9, 12) and day.day == 21:
        int_rows, int_cols = np.nonzero(is_open & (pop.product == CASA))
        interest = np.round(cents_by_slot[int_rows, int_cols] * 0.0005)  # 0.20 % a year, one quarter
        keep = interest >= 1
        int_rows, int_cols = int_rows[keep], int_cols[keep]
        parts.append((int_rows, int_cols, INT, interest[keep] / 100, gb.uniform(3600, 7200, len(int_rows))))
    for rows, cols, kind, amt, when in parts:
        cust = np.concatenate([cust, rows])
        slot = np.concatenate([slot, cols])
        ttype = np.concatenate([ttype, np.full(len(rows), kind)])
        channel = np.concatenate([channel, np.full(len(rows), SYS)])
        cash = np.concatenate([cash, np.zeros(len(rows), bool)])
        country = np.concatenate([country, np.zeros(len(rows), np.int64)])
        secs = np.concatenate([secs, when])
        amount = np.concatenate([amount, amt])
    cents = np.maximum(np.round(amount * 100), 1).astype(np.int64)
    secs = np.clip(secs, 0, 86_399).astype(np.int64)
    flat = cust * _SLOTS + slot
    order = np.lexsort((flat, secs))
    return (flat[order], secs[order], ttype[order], cents[order], channel[order], cash[order], country[order])


def _write_day(pop: _Population, d: int, folder: Path, encoding: str,
               writer: ThreadPoolExecutor) -> dict[str, tuple[int, int]]:
    """Compute and write the six tables of day d; returns table → (records, bytes).

    Joining, hashing and writing run on `writer` threads (Arrow, hashlib and file I/O release the GIL)
    while the next table is computed.
    """
    day = date.fromordinal(d)
    tag = f"{_ymd(np.array([d]))[0]:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    path = lambda table: folder / f"CBS_{table}_{tag}.dat"  # noqa: E731
    day_text = pa.scalar(tag.encode(), pa.binary())
    ascii_pool = lambda values: _pool(values, "ascii")  # noqa: E731
    written: dict[str, Future[tuple[int, int]]] = {}

    vi, vk = pop.acct_rows
    exists = pop.acct_open[vi, vk] <= d
    closed = pop.acct_close[vi, vk] <= d
    is_open = np.zeros((pop.n, _SLOTS), bool)
    is_open[vi[exists & ~closed], vk[exists & ~closed]] = True

    # CUSTOMER: static text + today's status. Customers join before the event window, so only days before
    # 2020 miss some.
    status = np.where(d >= pop.cust_close, 2, np.where(pop.dormant, 1, 0))
    prefix = pop.customer_prefix
    joined = np.flatnonzero(pop.cust_open <= d)
    if len(joined) < pop.n:
        prefix, status = pc.take(prefix, pa.array(joined)), status[joined]
    written["CUSTOMER"] = writer.submit(_write_table, path("CUSTOMER"), len(joined),
                                       [prefix, _take(ascii_pool(_STATUS), status)], encoding)

    # ACCOUNT: every account opened by today; a closed one keeps its row with status C and close_date.
    pos = np.flatnonzero(exists)
    idx = pa.array(pos)
    close_text = _blank_unless(closed[pos], _date_text(np.where(closed[pos], pop.acct_close[vi, vk][pos], d)))
    status_text = _take(ascii_pool(("A", "C")), closed[pos].astype(np.int64))
    written["ACCOUNT"] = writer.submit(_write_table, path("ACCOUNT"), len(pos),
                                      [pc.take(pop.account_prefix, idx), close_text, status_text], encoding)

    # BALANCE: open accounts only.
    open_pos = np.flatnonzero(exists & ~closed)
    rows, cols = vi[open_pos], vk[open_pos]
    cents = _balances(pop, d, rows, cols)
    cents_by_slot = np.zeros((pop.n, _SLOTS), np.int64)
    cents_by_slot[rows, cols] = cents
    written["BALANCE"] = writer.submit(_write_table, path("BALANCE"), len(open_pos), [
        pc.take(pop.acct_id, pa.array(open_pos)), day_text, _decimal(cents, 2),
        pc.take(pop.acct_ccy, pa.array(open_pos)),
    ], encoding)

    # TXN
    flat, secs, ttype, amount, channel, cash, country = _transactions(pop, d, day, is_open, cents_by_slot)
    m = len(flat)
    # txn_id = T + date + serial in time order: unique across days without any state.
    date_chars = np.broadcast_to(np.frombuffer(tag.encode(), np.uint8), (m, 8))
    t_char = np.full((m, 1), ord("T"), np.uint8)
    serial = _fixed(np.hstack([t_char, date_chars, _digits(np.arange(1, m + 1), 10)]))
    hhmmss = secs // 3600 * 10000 + secs % 3600 // 60 * 100 + secs % 60
    when = _fixed(np.hstack([date_chars, _digits(hhmmss, 6)]))
    txn_pos = pa.array(pop.acct_pos[flat])
    written["TXN"] = writer.submit(_write_table, path("TXN"), m, [
        serial, pc.take(pop.acct_id, txn_pos), when, _take(ascii_pool(_TXN_TYPES), ttype),
        _decimal(amount, 2), pc.take(pop.acct_ccy, txn_pos), _take(ascii_pool(_CHANNELS), channel),
        _take(ascii_pool(("N", "Y")), cash.astype(np.int64)), _take(ascii_pool(_COUNTRIES), country),
    ], encoding)

    # LOAN: live loans, i.e. whose LOAN account is open today (so maturity is always in the future).
    loan_cust = np.flatnonzero(pop.has_loan & is_open[np.arange(pop.n), pop.loan_slot])
    lpos = pop.acct_pos[loan_cust * _SLOTS + pop.loan_slot[loan_cust]]
    dpd = _dpd(pop, d, loan_cust)
    _, maturity, cycle = _loan_cycle(pop, d, loan_cust)
    written["LOAN"] = writer.submit(_write_table, path("LOAN"), len(loan_cust), [
        _prefixed("LN", (pop.cust_no[loan_cust] * 100 + pop.loan_slot[loan_cust]) * 100 + cycle % 100, 14),
        pc.take(pop.cust_id, pa.array(loan_cust)), pc.take(pop.acct_id, pa.array(lpos)),
        _take(ascii_pool(_LOAN_TYPES), pop.ltype[loan_cust]), _decimal(pop.principal_cents[loan_cust], 2),
        _decimal(_outstanding(pop, d, loan_cust), 2), pc.take(pop.acct_ccy, pa.array(lpos)), _int_text(dpd),
        _take(ascii_pool("012345"), _five_class(dpd, pop.loan_special[loan_cust])),
        _date_text(maturity),
    ], encoding)

    # FX_RATE: every non-CNY currency among today's accounts (transactions and loans use account currencies).
    used = np.unique(pop.ccy[vi[exists], vk[exists]])
    used = used[used != 0]
    rates = _fx_rates(pop, d)[used]
    written["FX_RATE"] = writer.submit(_write_table, path("FX_RATE"), len(used), [
        _take(ascii_pool(_CCYS), used), day_text, _decimal(rates, 6)], encoding)
    return {table: job.result() for table, job in written.items()}


# ----------------------------------------------------------------------------------------------- public


def generate(out_dir: Path, customers: int, start: date, end: date, seed: int = 42, encoding: str = "GBK",
             progress: Callable[[date], None] | None = None) -> GenerateSummary:
    """Write one complete extract batch per calendar day from start to end inclusive into out_dir/<YYYYMMDD>/.

    Same arguments give byte-identical files, and a day's files do not depend on the other days generated.
    """
    if isinstance(customers, bool) or not isinstance(customers, int | np.integer) or customers < 1:
        raise ValueError(f"customers must be a whole number >= 1, got {customers!r}")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, date):
            raise ValueError(f"{name} must be a date, got {value!r}")
    # A datetime is a date too, but comparing one with a plain date raises TypeError.
    start, end = (v.date() if isinstance(v, datetime) else v for v in (start, end))
    if end < start:
        raise ValueError(f"end ({end:%Y-%m-%d}) is before start ({start:%Y-%m-%d})")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    key = str(encoding).strip().upper() if isinstance(encoding, str) else None
    if key not in _ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}: use GBK or UTF-8")
    label, codec = _ENCODINGS[key]

    out_dir = Path(out_dir)
    pop = _Population(int(customers), int(seed), codec)
    records = dict.fromkeys(TABLES, 0)
    sizes = dict.fromkeys(TABLES, 0)
    first, last = start.toordinal(), end.toordinal()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="generate-write") as writer:
        for d in range(first, last + 1):
            day = date.fromordinal(d)
            for table, (count, size) in _write_day(pop, d, out_dir / f"{day:%Y%m%d}", label, writer).items():
                records[table] += count
                sizes[table] += size
            if progress is not None:
                progress(day)
    return GenerateSummary(out_dir=out_dir, days=last - first + 1, customers=int(customers), records=records,
                           bytes=sizes)
