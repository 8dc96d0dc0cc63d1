"""The demo company's customers: about 2,000 suppliers and buyers with 90 days of behaviour on its
website, app, mini program and WeChat Official Account, plus the orders of its order system.

Everything goes through the real ingest path: messages in the tracking API's normalised shape are
committed to the inbox per source (``inbox_store``) and processed by ``batches_process``, so identity
resolution merges the channels of one person exactly as it merges live traffic: an anonymous website
visitor who later signs up (the account service confirming the device, the account and the phone: a
website's word alone merges no one), a WeChat follower whose unionid reappears in the mini program,
an app login and the order system's orders by account id and phone.

Generation is deterministic (``random.Random(2026)``) and so are the messageIds: the same messages
stored again add nothing. Timestamps are relative to the moment of loading (90 days ending now).
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.ingest import MAX_ATTEMPTS, batches_process, inbox_store
from cdp.models import Customer, Event, Identity, IngestBatch, MergeLog, Source
from cdp.services import source_create
from cdp.tracking import KIND_EVENT_NAMES

DEMO_PEOPLE = 2000
DEMO_SEED = 2026
DAYS = 90
CHUNK_SIZE = 400  # events per inbox batch, as a busy client would send them
DRAIN_BATCHES = 25
MESSAGE_NAMESPACE = uuid.UUID("5b0d3c1e-7a52-4f0e-9d8b-2a64c1f0e926")

# The demo company's touch points (name, kind); the order system's event count marks a loaded demo.
DEMO_SOURCES = (
    ("官网", Source.Kind.WEB),
    ("App", Source.Kind.APP),
    ("小程序", Source.Kind.MINI_PROGRAM),
    ("微信公众号", Source.Kind.WECHAT_OA),
    ("订单系统", Source.Kind.SERVER),
)
TOUCH_POINTS = ("web", "app", "mini_program", "wechat_oa")
OA_APPID = "wx3f8a6c1d9e2b7054"  # the Official Account
MP_APPID = "wx9b2e47d1c6a8f305"  # the mini program, bound to the same Open Platform account

# ---------------------------------------------------------------------------------------------
# People

SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"),
    ("罗", "luo"), ("高", "gao"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("邓", "deng"), ("冯", "feng"), ("韩", "han"), ("曹", "cao"),
    ("曾", "zeng"), ("彭", "peng"), ("萧", "xiao"), ("蔡", "cai"), ("潘", "pan"), ("田", "tian"),
    ("董", "dong"), ("袁", "yuan"), ("于", "yu"), ("余", "yu"), ("叶", "ye"), ("蒋", "jiang"),
    ("杜", "du"), ("苏", "su"), ("魏", "wei"), ("程", "cheng"), ("吕", "lv"), ("丁", "ding"),
    ("沈", "shen"), ("任", "ren"), ("姚", "yao"), ("卢", "lu"), ("傅", "fu"), ("钟", "zhong"),
    ("姜", "jiang"), ("崔", "cui"), ("谭", "tan"), ("廖", "liao"), ("范", "fan"), ("汪", "wang"),
    ("陆", "lu"), ("金", "jin"), ("石", "shi"), ("戴", "dai"), ("贾", "jia"), ("韦", "wei"),
    ("夏", "xia"), ("邱", "qiu"), ("方", "fang"), ("侯", "hou"), ("邹", "zou"), ("熊", "xiong"),
    ("孟", "meng"), ("秦", "qin"), ("白", "bai"), ("江", "jiang"), ("薛", "xue"), ("尹", "yin"),
    ("段", "duan"), ("雷", "lei"), ("黎", "li"), ("史", "shi"), ("龙", "long"), ("陶", "tao"),
    ("贺", "he"), ("顾", "gu"), ("毛", "mao"), ("郝", "hao"), ("龚", "gong"), ("邵", "shao"),
)  # fmt: skip
MALE_GIVEN = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("勇", "yong"), ("杰", "jie"),
    ("涛", "tao"), ("斌", "bin"), ("超", "chao"), ("明", "ming"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"),
    ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"), ("帆", "fan"),
    ("旭", "xu"), ("宁", "ning"), ("龙", "long"), ("阳", "yang"), ("建", "jian"), ("国", "guo"),
    ("志", "zhi"), ("文", "wen"), ("海", "hai"), ("峰", "feng"), ("晨", "chen"), ("博", "bo"),
    ("成", "cheng"), ("亮", "liang"), ("东", "dong"), ("毅", "yi"), ("振", "zhen"), ("德", "de"),
    ("鸿", "hong"), ("子", "zi"), ("轩", "xuan"), ("睿", "rui"), ("泽", "ze"), ("嘉", "jia"),
)  # fmt: skip
FEMALE_GIVEN = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("燕", "yan"), ("玲", "ling"), ("婷", "ting"), ("雪", "xue"),
    ("慧", "hui"), ("莹", "ying"), ("倩", "qian"), ("琳", "lin"), ("洁", "jie"), ("颖", "ying"),
    ("萍", "ping"), ("红", "hong"), ("梅", "mei"), ("琴", "qin"), ("云", "yun"), ("佳", "jia"),
    ("欣", "xin"), ("悦", "yue"), ("晶", "jing"), ("蕾", "lei"), ("薇", "wei"), ("月", "yue"),
    ("璐", "lu"), ("瑶", "yao"), ("思", "si"), ("雨", "yu"), ("涵", "han"), ("怡", "yi"),
)  # fmt: skip
# City, weight, the first six digits of an ID number issued there.
CITIES = (
    ("深圳", 12, "440304"), ("广州", 9, "440106"), ("上海", 8, "310115"), ("北京", 7, "110105"),
    ("杭州", 6, "330106"), ("东莞", 5, "441900"), ("成都", 5, "510107"), ("佛山", 4, "440604"),
    ("武汉", 4, "420106"), ("南京", 4, "320106"), ("苏州", 4, "320505"), ("重庆", 3, "500103"),
    ("西安", 3, "610113"), ("郑州", 3, "410105"), ("长沙", 3, "430104"), ("厦门", 2, "350203"),
    ("宁波", 2, "330203"), ("天津", 2, "120104"), ("青岛", 2, "370202"), ("合肥", 2, "340104"),
    ("济南", 2, "370102"), ("福州", 2, "350102"), ("昆明", 1, "530102"), ("南宁", 1, "450103"),
    ("沈阳", 1, "210102"),
)  # fmt: skip
COMPANY_WORDS = (
    ("安佳", "anjia"), ("慧联", "huilian"), ("中盾", "zhongdun"), ("天视", "tianshi"),
    ("捷通", "jietong"), ("华信", "huaxin"), ("远望", "yuanwang"), ("鼎盛", "dingsheng"),
    ("宏图", "hongtu"), ("易联", "yilian"), ("博睿", "borui"), ("恒泰", "hengtai"),
    ("金盾", "jindun"), ("云智", "yunzhi"), ("海纳", "haina"), ("星辰", "xingchen"),
    ("联创", "lianchuang"), ("瑞达", "ruida"), ("凯盛", "kaisheng"), ("万安", "wanan"),
    ("九州", "jiuzhou"), ("精诚", "jingcheng"), ("智汇", "zhihui"), ("信达", "xinda"),
    ("天成", "tiancheng"), ("东方", "dongfang"), ("永信", "yongxin"), ("国安", "guoan"),
)  # fmt: skip
INDUSTRIES = ("安防监控", "智能家居", "综合布线", "楼宇对讲", "音视频")
SUPPLIER_COMPANY = {
    "安防监控": ("安防科技有限公司", "视讯技术有限公司", "电子科技有限公司"),
    "智能家居": ("智能科技有限公司", "智能家居有限公司", "物联网科技有限公司"),
    "综合布线": ("通信器材有限公司", "线缆有限公司", "网络科技有限公司"),
    "楼宇对讲": ("楼宇智能有限公司", "电子有限公司", "智能系统有限公司"),
    "音视频": ("音视频技术有限公司", "声学科技有限公司", "显示技术有限公司"),
}
BUYER_TYPES = (
    ("弱电工程商", 35, ("弱电工程有限公司", "安防工程有限公司", "智能化工程有限公司")),
    ("系统集成商", 20, ("系统集成有限公司", "信息技术有限公司")),
    ("物业公司", 10, ("物业服务有限公司",)),
    ("装修公司", 15, ("装饰工程有限公司", "建筑装饰有限公司")),
    ("个人用户", 20, ()),
)
SUPPLIER_TITLES = ("销售经理", "渠道经理", "总经理", "市场专员", "电商运营")
BUYER_TITLES = ("采购经理", "项目经理", "工程师", "总经理", "采购专员")
PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "198", "199",
)  # fmt: skip
MAIL_DOMAINS = ("163.com", "126.com", "sina.com", "foxmail.com", "139.com")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
OPENID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

# ---------------------------------------------------------------------------------------------
# What they look at and buy

CATEGORY_SLUGS = {
    "安防监控": "anfang",
    "智能家居": "smarthome",
    "综合布线": "cabling",
    "楼宇对讲": "intercom",
    "音视频": "av",
}
CATALOG = {
    "安防监控": (
        ("AF-IPC-4M01", "400万像素红外网络摄像机(筒机)", "安视达", 329),
        ("AF-IPC-4M02", "400万像素全彩半球摄像机", "安视达", 359),
        ("AF-IPC-8M01", "800万像素AI智能警戒摄像机", "天眸", 899),
        ("AF-PTZ-2M25", "200万像素4寸球机 25倍变焦", "天眸", 2680),
        ("AF-NVR-0801", "8路网络硬盘录像机(1盘位)", "安视达", 699),
        ("AF-NVR-3204", "32路网络硬盘录像机(4盘位)", "天眸", 2599),
        ("AF-HDD-4T01", "4TB监控级硬盘", "鑫存", 569),
        ("AF-POE-0801", "8口百兆PoE交换机", "联讯", 239),
    ),
    "智能家居": (
        ("ZJ-LOCK-F01", "全自动人脸识别智能门锁", "慧居", 2299),
        ("ZJ-LOCK-P02", "指纹密码智能门锁 C级锁芯", "慧居", 1299),
        ("ZJ-GW-Z301", "Zigbee 3.0智能网关", "云悦", 199),
        ("ZJ-SW-0103", "零火三键智能开关面板", "云悦", 159),
        ("ZJ-CUR-M01", "静音智能窗帘电机", "慧居", 699),
        ("ZJ-SEN-R01", "毫米波人体存在传感器", "云悦", 129),
        ("ZJ-SCR-0486", "86型4寸智能中控屏", "慧居", 899),
    ),
    "综合布线": (
        ("ZB-C6-305", "超六类非屏蔽网线 305米/箱", "联通达", 689),
        ("ZB-C5E-305", "超五类非屏蔽网线 305米/箱", "联通达", 399),
        ("ZB-PP6-24", "24口超六类配线架", "联通达", 239),
        ("ZB-FJ-SL3", "SC-LC单模光纤跳线 3米", "光联", 12),
        ("ZB-CAB-42U", "42U标准网络机柜 600×1000", "恒固", 1680),
        ("ZB-MOD-C6", "超六类免打模块", "光联", 16),
    ),
    "楼宇对讲": (
        ("LY-IN-07", "7寸可视对讲室内机", "邻安", 459),
        ("LY-IN-10A", "10寸安卓可视对讲室内机", "邻安", 1099),
        ("LY-OUT-F01", "人脸识别单元门口机", "邻安", 1899),
        ("LY-VIL-01", "别墅可视门铃门口机", "声讯", 699),
        ("LY-MGR-01", "管理中心机", "声讯", 1599),
        ("LY-SW-16", "楼宇对讲专用交换机", "邻安", 899),
    ),
    "音视频": (
        ("YS-CAM-4K12", "4K视频会议摄像头 12倍光学变焦", "朗声", 3999),
        ("YS-MIC-O01", "会议全向麦克风", "朗声", 899),
        ("YS-AMP-350", "定压广播功放 350W", "迪音", 1299),
        ("YS-SPK-C06", "6寸吸顶音箱", "迪音", 79),
        ("YS-LCD-5535", "55寸液晶拼接屏 3.5mm拼缝", "视联", 4980),
        ("YS-MAT-1616", "16进16出高清矩阵", "视联", 6800),
        ("YS-IWB-86", "86寸会议平板", "视联", 8999),
    ),
}
SEARCHES = {
    "安防监控": ("400万摄像头", "poe交换机", "硬盘录像机", "球机", "监控硬盘"),
    "智能家居": ("智能门锁", "zigbee网关", "窗帘电机", "智能开关"),
    "综合布线": ("六类网线", "配线架", "机柜", "光纤跳线"),
    "楼宇对讲": ("可视对讲", "门口机", "别墅门铃"),
    "音视频": ("会议摄像头", "吸顶音箱", "拼接屏", "功放"),
}
SITE = "https://www.ruodian.example"
SITE_TITLE = "弱电优选"
APP_SCREENS = ("首页", "分类", "消息", "我的订单", "直播")
MINI_PAGES = ("pages/index/index", "pages/category/index", "pages/live/index", "pages/mine/index")
OA_MENUS = ("商城首页", "最新活动", "直播预告", "联系客服", "我的订单", "供应商入驻")
SUPPLIER_PAGES = (
    ("/supplier/dashboard", "供应商工作台"),
    ("/supplier/products", "商品管理"),
    ("/supplier/orders", "订单管理"),
    ("/supplier/settlement", "结算中心"),
)
PAYMENT_METHODS = ("对公转账", "企业网银", "微信支付", "支付宝", "账期支付")
PAYMENT_WEIGHTS = (4, 3, 4, 2, 2)
# Live streams, by days before today (negative: still to come), where people sign up.
LIVES = (
    (80, "live-2601", "2026智能家居新品发布直播"),
    (66, "live-2602", "综合布线工程实战公开课"),
    (52, "live-2603", "楼宇对讲系统选型直播"),
    (38, "live-2604", "安防监控AI摄像机专场"),
    (24, "live-2605", "会议音视频解决方案直播"),
    (3, "live-2607", "年末备货采购指南直播"),
    (-5, "live-2608", "2027弱电行业趋势展望"),
)
DOUBLE_11_LIVE = ("live-2606", "双11弱电采购节开幕直播")
HOUR_WEIGHTS = (
    0.35, 0.18, 0.1, 0.07, 0.07, 0.12, 0.3, 0.7, 1.2, 1.7, 1.9, 1.7,
    1.2, 1.3, 1.7, 1.8, 1.6, 1.4, 1.4, 1.9, 2.4, 2.6, 2.1, 1.1,
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.1, 1.1, 1.05, 1.05, 1.0, 0.75, 0.7)


@dataclass
class Person:
    index: int
    rng: random.Random
    name: str
    phone: str
    email: str | None
    role: str  # supplier, buyer or both
    industry: str | None
    buyer_type: str | None
    city: str
    company: str | None
    job_title: str
    id_number: str | None
    interests: list[float]  # weight per category, in INDUSTRIES order
    channels: list[str]
    web_anonymous_id: str
    app_device_id: str
    app_os: str
    mini_anonymous_id: str
    oa_openid: str
    mp_openid: str
    unionid: str
    user_id: str | None = None  # the platform account, once they sign up
    sequence: int = 0

    @property
    def is_supplier(self) -> bool:
        return self.role in ("supplier", "both")

    @property
    def is_buyer(self) -> bool:
        return self.role in ("buyer", "both")

    def profile(self) -> dict:
        traits = {
            "name": self.name,
            "phone": self.phone,
            "role": self.role,
            "roles": [role for role in ("supplier", "buyer") if self.role in (role, "both")],
            "city": self.city,
            "job_title": self.job_title,
        }
        if self.email:
            traits["email"] = self.email
        if self.company:
            traits["company"] = self.company
        if self.industry:
            traits["industry"] = self.industry
        if self.buyer_type:
            traits["buyer_type"] = self.buyer_type
        return traits

    def wechat(self, appid: str) -> dict:
        openid = self.oa_openid if appid == OA_APPID else self.mp_openid
        return {"wechat_openid": openid, "wechat_appid": appid, "unionid": self.unionid}


def _weighted(rng: random.Random, options, weights):
    return rng.choices(options, weights=weights)[0]


def _openid(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(OPENID_ALPHABET) for _ in range(28 - len(prefix)))


def _id_number(rng: random.Random, region: str, year: int) -> str:
    birthday = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
    body = f"{region}{birthday:%Y%m%d}{rng.randrange(1000):03d}"
    return (
        body + ID_CHECK[sum(int(digit) * weight for digit, weight in zip(body, ID_WEIGHTS, strict=True)) % 11]
    )


def _company(rng: random.Random, city: str, suffixes: tuple[str, ...]) -> tuple[str, str]:
    word, pinyin = rng.choice(COMPANY_WORDS)
    return f"{city}市{word}{rng.choice(suffixes)}", pinyin


def _email(rng: random.Random, surname: str, given: str, company_domain: str | None) -> str:
    style = rng.random()
    if company_domain and style < 0.45:
        return f"{given}.{surname}@{company_domain}"
    if style < 0.7:
        return f"{rng.randint(10_000_000, 3_999_999_999)}@qq.com"
    return f"{surname}{given}{rng.randint(1, 99) if rng.random() < 0.7 else ''}@{rng.choice(MAIL_DOMAINS)}"


def _people(count: int, seed: int) -> list[Person]:
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    surname_weights = [1 / (rank + 1) ** 0.7 for rank in range(len(SURNAMES))]
    phones: set[str] = set()
    people = []
    for index in range(count):
        person_rng = random.Random(rng.getrandbits(64))  # noqa: S311
        surname, surname_py = _weighted(rng, SURNAMES, surname_weights)
        given_names = MALE_GIVEN if rng.random() < 0.62 else FEMALE_GIVEN
        given = [rng.choice(given_names) for _ in range(1 if rng.random() < 0.35 else 2)]
        name = surname + "".join(part for part, _ in given)
        given_py = "".join(pinyin for _, pinyin in given)
        phone = ""
        while not phone or phone in phones:
            phone = rng.choice(PHONE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
        phones.add(phone)
        city, _weight, region = _weighted(rng, CITIES, [city[1] for city in CITIES])
        role = _weighted(rng, ("supplier", "buyer", "both"), (28, 62, 10))
        industry = buyer_type = company = domain = None
        if role in ("supplier", "both"):
            industry = rng.choice(INDUSTRIES)
            company, pinyin = _company(rng, city, SUPPLIER_COMPANY[industry])
            domain = f"{pinyin}-{CATEGORY_SLUGS[industry]}.com.cn"
        if role in ("buyer", "both"):
            buyer_type, _weight, suffixes = _weighted(rng, BUYER_TYPES, [kind[1] for kind in BUYER_TYPES])
            if company is None and suffixes:
                company, pinyin = _company(rng, city, suffixes)
                domain = f"{pinyin}.cn"
        email = _email(rng, surname_py, given_py, domain) if rng.random() < 0.45 else None
        titles = SUPPLIER_TITLES if role == "supplier" else BUYER_TITLES
        interests = [1.0] * len(INDUSTRIES)
        for favourite in [industry] if industry else rng.sample(INDUSTRIES, rng.choice((1, 1, 2))):
            interests[INDUSTRIES.index(favourite)] = 6.0
        channel_count = _weighted(rng, (1, 2, 3, 4), (30, 33, 24, 13))
        channels = []
        while len(channels) < channel_count:
            channel = _weighted(rng, TOUCH_POINTS, (60, 30, 45, 50))
            if channel not in channels:
                channels.append(channel)
        people.append(
            Person(
                index=index,
                rng=person_rng,
                name=name,
                phone=phone,
                email=email,
                role=role,
                industry=industry,
                buyer_type=buyer_type,
                city=city,
                company=company,
                job_title=rng.choice(titles) if company else "个人",
                id_number=_id_number(rng, region, rng.randint(1968, 1999)) if industry else None,
                interests=interests,
                channels=channels,
                web_anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                app_device_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper(),
                app_os=_weighted(rng, ("Android", "iOS"), (62, 38)),
                mini_anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                oa_openid=_openid(rng, "oX7Tk0"),
                mp_openid=_openid(rng, "o4Gq2w"),
                unionid=_openid(rng, "oR1Lm9"),
            )
        )
    return people


# ---------------------------------------------------------------------------------------------
# Their behaviour


@dataclass(order=True)
class Timed:
    moment: dt.datetime
    channel: str = field(compare=False)
    message: dict = field(compare=False)


class _Generator:
    """Writes each person's sessions, chronologically, as normalised tracking messages."""

    def __init__(self, people: list[Person], now: dt.datetime):
        self.people = people
        self.now = now
        self.zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        self.today = now.astimezone(self.zone).date()
        self.first_day = self.today - dt.timedelta(days=DAYS - 1)
        self.days = [self.first_day + dt.timedelta(days=offset) for offset in range(DAYS)]
        # Sessions start at least two hours ago; today counts for the part of its day gone by.
        self.latest = now - dt.timedelta(hours=2)
        self.open_hours = [
            hour
            for hour in range(24)
            if dt.datetime.combine(self.today, dt.time(hour), tzinfo=self.zone) < self.latest
        ]
        self.day_weights = [WEEKDAY_WEIGHTS[day.weekday()] * self._special(day) for day in self.days]
        self.day_weights[-1] *= sum(HOUR_WEIGHTS[hour] for hour in self.open_hours) / sum(HOUR_WEIGHTS)
        self.messages: list[Timed] = []
        self.lives = [
            (self.today - dt.timedelta(days=days_ago), live_id, title) for days_ago, live_id, title in LIVES
        ]
        for day in self.days:
            if (day.month, day.day) == (11, 10):
                self.lives.append((day, *DOUBLE_11_LIVE))
        self.user_ids = iter(range(1_028_341, 10_000_000, 37))
        self.order_numbers: dict[dt.date, int] = defaultdict(int)

    @staticmethod
    def _special(day: dt.date) -> float:
        """Shopping festivals: Double 11 (and its warm-up), 618."""
        if (day.month, day.day) == (11, 11):
            return 5.0
        if day.month == 11 and 1 <= day.day <= 10:
            return 1.1 + 0.04 * day.day
        if (day.month, day.day) in ((11, 12), (6, 18)):
            return 1.8
        return 1.0

    @staticmethod
    def _festival(day: dt.date) -> bool:
        return (day.month, day.day) in ((11, 11), (6, 18))

    # --- messages -----------------------------------------------------------------------------

    def _emit(self, person: Person, channel: str, moment: dt.datetime, kind: str, **fields) -> dict:
        """One message in the shape ``cdp.tracking._clean_message`` returns."""
        person.sequence += 1
        moment = min(moment, self.now - dt.timedelta(seconds=1))
        properties = fields.get("properties") or {}
        message = {
            "kind": kind,
            "name": fields["event"] if kind == "track" else KIND_EVENT_NAMES[kind],
            "messageId": str(uuid.uuid5(MESSAGE_NAMESPACE, f"{person.index}:{person.sequence}")),
            "userId": fields.get("user_id"),
            "anonymousId": fields.get("anonymous_id"),
            "previousId": None,
            "timestamp": moment.isoformat(),
            "properties": properties,
            "traits": fields.get("traits") or {},
            "context": self._context(person, channel, fields.get("context_traits")),
        }
        if fields.get("external_ids"):
            message["context"]["externalIds"] = fields["external_ids"]
        self.messages.append(Timed(moment, channel, message))
        return message

    def _context(self, person: Person, channel: str, traits: dict | None) -> dict:
        if channel == "web":
            context = {"library": {"name": "analytics.js", "version": "5.2.1"}, "locale": "zh-CN"}
        elif channel == "app":
            library = "analytics-android" if person.app_os == "Android" else "analytics-ios"
            context = {
                "library": {"name": library, "version": "4.11.3"},
                "app": {"name": SITE_TITLE, "version": "3.8.2"},
                "os": {"name": person.app_os},
            }
        elif channel == "mini_program":
            context = {"library": {"name": "analytics-miniprogram", "version": "2.4.0"}}
        elif channel == "wechat_oa":
            context = {"library": {"name": "wechat-oa-connector", "version": "1.3.0"}}
        else:
            context = {"library": {"name": "order-service", "version": "2026.11"}}
        if traits:
            context["traits"] = traits
        return context

    def _ids(self, person: Person, channel: str) -> dict:
        """Who a client-side message names: its device id, the account once signed in, WeChat ids."""
        if channel == "web":
            return {"anonymous_id": person.web_anonymous_id, "user_id": person.user_id}
        if channel == "app":
            return {"anonymous_id": person.app_device_id, "user_id": person.user_id}
        if channel == "mini_program":
            return {
                "anonymous_id": person.mini_anonymous_id,
                "user_id": person.user_id,
                "context_traits": person.wechat(MP_APPID),
            }
        return {"anonymous_id": person.oa_openid, "context_traits": person.wechat(OA_APPID)}

    # --- time ---------------------------------------------------------------------------------

    def _moment(self, rng: random.Random, day_index: int) -> dt.datetime:
        hours = self.open_hours if day_index == DAYS - 1 else range(24)
        hour = _weighted(rng, hours, [HOUR_WEIGHTS[hour] for hour in hours])
        moment = dt.datetime.combine(
            self.days[day_index], dt.time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=self.zone
        )
        return min(moment, self.latest - dt.timedelta(seconds=rng.randrange(3600)))

    def _session_days(self, person: Person, count: int) -> list[int]:
        rng = person.rng
        if rng.random() < 0.35:  # a customer from before the window
            return sorted(rng.choices(range(DAYS), weights=self.day_weights, k=count))
        join = _weighted(rng, range(DAYS), self.day_weights)
        later = rng.choices(range(join, DAYS), weights=self.day_weights[join:], k=count - 1)
        return [join, *sorted(later)]

    # --- people -------------------------------------------------------------------------------

    def person(self, person: Person) -> None:
        rng = person.rng
        count = max(len(person.channels), min(45, 1 + int(rng.lognormvariate(1.3, 0.85))))
        preference = [rng.uniform(0.5, 2.0) for _ in person.channels]
        days = self._session_days(person, count)
        # Each channel's first session comes in the order the person took them up.
        firsts = rng.sample(range(count), len(person.channels))
        channels = {session: person.channels[i] for i, session in enumerate(sorted(firsts))}
        # People who never leave a phone number anywhere: browsing only.
        state = {
            "anonymous": person.channels == ["web"] and rng.random() < 0.3,
            "web_identified": False,
            "app_logged_in": False,
            "mini_phone": False,
            "followed_at": None,
            "unfollowed_at": None,
        }
        for session, day in enumerate(days):
            channel = channels.get(session) or rng.choices(person.channels, weights=preference)[0]
            moment = self._moment(rng, day)
            if channel == "wechat_oa":
                self._oa_session(person, moment, state)
            else:
                self._shop_session(person, channel, moment, state)
        self._campaigns(person, state)

    def _sign_up(self, person: Person, channel: str, moment: dt.datetime, method: str) -> None:
        """Creates the platform account (``userId``); suppliers verify their ID number."""
        first = person.user_id is None
        if first:
            person.user_id = f"U{next(self.user_ids)}"
        traits = person.profile()
        if channel == "mini_program":
            traits.update(person.wechat(MP_APPID))
        ids = self._ids(person, channel)
        ids.pop("context_traits", None)
        self._emit(person, channel, moment, "identify", traits=traits, **ids)
        # The account service, having checked the SMS code (or WeChat's phone number), says the same:
        # a client-side source's word merges no one (README, "Security"), a trusted source's does.
        self._emit(person, "server", moment + dt.timedelta(seconds=1), "identify", traits=traits, **ids)
        if first:
            self._emit(
                person,
                channel,
                moment + dt.timedelta(seconds=2),
                "track",
                event="Signed Up",
                properties={"method": method, "role": person.role},
                **self._ids(person, channel),
            )
            if person.id_number and person.rng.random() < 0.7:
                # Supplier onboarding: the order system verifies the company's legal representative.
                verified = moment + dt.timedelta(hours=person.rng.randint(2, 30))
                if verified < self.now:
                    self._emit(
                        person,
                        "server",
                        verified,
                        "track",
                        event="Supplier Verified",
                        properties={"industry": person.industry, "company": person.company},
                        user_id=person.user_id,
                        context_traits={"phone": person.phone},
                        # Not a trait: an ID number must never be copied into the profile in clear.
                        external_ids=[{"type": "id_number", "id": person.id_number}],
                    )

    def _identify(self, person: Person, channel: str, moment: dt.datetime, state: dict) -> None:
        if channel == "web" and not state["web_identified"]:
            self._sign_up(person, channel, moment, "phone")
            state["web_identified"] = True
        elif channel == "app" and not state["app_logged_in"]:
            self._sign_up(person, channel, moment, "sms_code")
            state["app_logged_in"] = True
        elif channel == "mini_program" and not state["mini_phone"]:
            self._sign_up(person, channel, moment, "wechat_phone")
            state["mini_phone"] = True

    def _identified(self, channel: str, state: dict) -> bool:
        key = {"web": "web_identified", "app": "app_logged_in", "mini_program": "mini_phone"}[channel]
        return state[key]

    def _page(self, person: Person, channel: str, moment: dt.datetime, path: str, title: str) -> None:
        ids = self._ids(person, channel)
        if channel == "web":
            properties = {"path": path, "url": SITE + path, "title": f"{title} - {SITE_TITLE}", "name": title}
            self._emit(person, channel, moment, "page", properties=properties, **ids)
        elif channel == "app":
            self._emit(person, channel, moment, "screen", properties={"name": title}, **ids)
        else:
            properties = {"path": path, "title": title, "name": title}
            self._emit(person, channel, moment, "page", properties=properties, **ids)

    def _product(self, person: Person) -> tuple[str, tuple]:
        category = _weighted(person.rng, INDUSTRIES, person.interests)
        return category, person.rng.choice(CATALOG[category])

    @staticmethod
    def _product_properties(category: str, product: tuple, **extra) -> dict:
        sku, name, brand, price = product
        return {
            "product_id": sku,
            "sku": sku,
            "name": name,
            "brand": brand,
            "category": category,
            "price": price,
            "currency": "CNY",
            **extra,
        }

    def _quantity(self, person: Person, price: int) -> int:
        rng = person.rng
        if person.buyer_type == "个人用户":
            return rng.randint(1, 3)
        if price < 50:
            return rng.choice((20, 24, 48, 50, 100, 120, 200))
        if price < 300:
            return rng.randint(4, 40)
        if price < 1000:
            return rng.randint(2, 24)
        if price < 3000:
            return rng.randint(1, 8)
        return rng.randint(1, 3)

    def _shop_session(self, person: Person, channel: str, moment: dt.datetime, state: dict) -> None:
        rng = person.rng
        day = moment.astimezone(self.zone).date()
        festival = self._festival(day)
        clock = moment

        def tick(low: int = 8, high: int = 90) -> dt.datetime:
            nonlocal clock
            clock += dt.timedelta(seconds=rng.randint(low, high))
            return clock

        if channel == "app":
            self._emit(
                person, channel, clock, "track", event="Application Opened", **self._ids(person, channel)
            )
        # Apps ask for a login early; on the website and in the mini program people browse first.
        if not state["anonymous"] and not self._identified(channel, state):
            early = {"app": 0.75, "web": 0.25, "mini_program": 0.45}[channel]
            if person.user_id:  # they have an account already: signing in is quicker
                early = min(0.9, early + 0.4)
            if rng.random() < early:
                self._identify(person, channel, tick(), state)
        if person.is_supplier and channel in ("web", "app") and not state["anonymous"] and rng.random() < 0.5:
            self._supplier_session(person, channel, clock, state)
            return
        landing = self._landing(person, channel, day)
        self._page(person, channel, tick(), *landing)
        if rng.random() < 0.3:
            category, _product = self._product(person)
            query = rng.choice(SEARCHES[category])
            self._emit(
                person,
                channel,
                tick(),
                "track",
                event="Products Searched",
                properties={"query": query},
                **self._ids(person, channel),
            )
        viewed = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4, 5))):
            category, product = self._product(person)
            viewed.append((category, product))
            self._emit(
                person,
                channel,
                tick(15, 180),
                "track",
                event="Product Viewed",
                properties=self._product_properties(category, product),
                **self._ids(person, channel),
            )
        self._live_sign_up(person, channel, tick(), state)
        if not viewed or not person.is_buyer or state["anonymous"]:
            return
        cart_chance = (0.35 if person.role == "buyer" else 0.15) * (2.2 if festival else 1.0)
        if rng.random() >= cart_chance:
            return
        cart = []
        for category, product in rng.sample(viewed, rng.randint(1, len(viewed))):
            quantity = self._quantity(person, product[3])
            cart.append((category, product, quantity))
            self._emit(
                person,
                channel,
                tick(),
                "track",
                event="Product Added",
                properties=self._product_properties(category, product, quantity=quantity),
                **self._ids(person, channel),
            )
        if rng.random() < (0.75 if festival else 0.6):
            self._identify(person, channel, tick(), state)  # checking out needs the account
            self._order(person, channel, tick(60, 600), cart, festival)

    def _landing(self, person: Person, channel: str, day: dt.date) -> tuple[str, str]:
        rng = person.rng
        if day.month == 11 and 1 <= day.day <= 12 and rng.random() < 0.5:
            return (
                ("/promo/double11", "双11弱电采购节")
                if channel == "web"
                else ("pages/promo/double11", "双11会场")
            )
        if channel == "web":
            if rng.random() < 0.45:
                return ("/", "首页")
            category = _weighted(rng, INDUSTRIES, person.interests)
            return (f"/c/{CATEGORY_SLUGS[category]}", category)
        if channel == "app":
            return ("", rng.choice(APP_SCREENS))
        path = rng.choice(MINI_PAGES)
        return (
            path,
            {"index": "首页", "category": "分类", "live": "直播", "mine": "我的"}[path.split("/")[1]],
        )

    def _live_sign_up(self, person: Person, channel: str, moment: dt.datetime, state: dict) -> None:
        """Live-stream sign-up forms ask for name and phone: for many people, the first time they say who
        they are."""
        if state["anonymous"] or channel == "app":
            return
        day = moment.astimezone(self.zone).date()
        upcoming = [live for live in self.lives if dt.timedelta(0) <= live[0] - day <= dt.timedelta(days=7)]
        if not upcoming or person.rng.random() >= 0.15:
            return
        live_day, live_id, title = upcoming[0]
        fields = self._ids(person, channel)
        form_traits = {"name": person.name, "phone": person.phone}
        if person.company:
            form_traits["company"] = person.company
        if person.email and person.rng.random() < 0.5:
            form_traits["email"] = person.email
        fields["context_traits"] = {**(fields.get("context_traits") or {}), **form_traits}
        properties = {
            "form_id": "live-signup",
            "form_name": "直播报名",
            "live_id": live_id,
            "live_title": title,
            "live_at": dt.datetime.combine(live_day, dt.time(19, 30), tzinfo=self.zone).isoformat(),
        }
        self._emit(person, channel, moment, "track", event="Form Submitted", properties=properties, **fields)

    def _supplier_session(self, person: Person, channel: str, moment: dt.datetime, state: dict) -> None:
        rng = person.rng
        self._identify(person, channel, moment, state)
        clock = moment
        for path, title in rng.sample(SUPPLIER_PAGES, rng.randint(1, 3)):
            clock += dt.timedelta(seconds=rng.randint(20, 240))
            self._page(person, channel, clock, path, title)
        if rng.random() < 0.25:
            product = rng.choice(CATALOG[person.industry])
            clock += dt.timedelta(seconds=rng.randint(60, 600))
            self._emit(
                person,
                "server",
                clock,
                "track",
                event="Product Listed",
                properties={
                    **self._product_properties(person.industry, product),
                    "stock": rng.randint(20, 2000),
                },
                user_id=person.user_id,
                context_traits={"phone": person.phone},
            )

    def _order(self, person: Person, channel: str, moment: dt.datetime, cart: list, festival: bool) -> None:
        rng = person.rng
        day = moment.astimezone(self.zone).date()
        self.order_numbers[day] += 1
        order_id = f"SO{day:%Y%m%d}{self.order_numbers[day]:05d}"
        discount = 0.9 if festival else 1.0
        products = [
            {
                "sku": product[0],
                "name": product[1],
                "category": category,
                "price": product[3],
                "quantity": qty,
            }
            for category, product, qty in cart
        ]
        subtotal = sum(item["price"] * item["quantity"] for item in products)
        revenue = round(subtotal * discount, 2)
        properties = {
            "order_id": order_id,
            "revenue": revenue,
            "subtotal": subtotal,
            "discount": round(subtotal - revenue, 2),
            "currency": "CNY",
            "products": products,
            "payment_method": _weighted(rng, PAYMENT_METHODS, PAYMENT_WEIGHTS),
            "ordered_via": channel,
        }
        if festival:
            properties["coupon"] = "双11满减"
        traits = {"phone": _phone_as_typed(rng, person.phone), "name": person.name}
        if person.email:
            traits["email"] = person.email
        if person.company:
            traits["company"] = person.company
        self._emit(
            person,
            "server",
            moment,
            "track",
            event="Order Completed",
            properties=properties,
            user_id=person.user_id,
            context_traits=traits,
        )

    def _oa_session(self, person: Person, moment: dt.datetime, state: dict) -> None:
        rng = person.rng
        ids = self._ids(person, "wechat_oa")
        clock = moment
        if state["followed_at"] is None:
            scene = _weighted(rng, ("搜一搜", "文章内名片", "扫描二维码", "直播间"), (3, 3, 4, 2))
            self._emit(
                person, "wechat_oa", clock, "track", event="wechat_follow", properties={"scene": scene}, **ids
            )
            state["followed_at"] = clock
            if rng.random() < 0.4 and not state["anonymous"]:
                # The account's "bind your phone" page: the follower leaves their number.
                clock += dt.timedelta(minutes=rng.randint(1, 20))
                traits = {**person.wechat(OA_APPID), "phone": person.phone, "name": person.name}
                self._emit(
                    person, "wechat_oa", clock, "identify", traits=traits, anonymous_id=person.oa_openid
                )
        elif state["unfollowed_at"] is not None:
            return
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            clock += dt.timedelta(seconds=rng.randint(5, 300))
            menu = rng.choice(OA_MENUS)
            self._emit(
                person, "wechat_oa", clock, "track", event="Menu Clicked", properties={"menu": menu}, **ids
            )
        if rng.random() < 0.04:
            clock += dt.timedelta(minutes=rng.randint(1, 60))
            self._emit(person, "wechat_oa", clock, "track", event="wechat_unfollow", properties={}, **ids)
            state["unfollowed_at"] = clock

    def _campaigns(self, person: Person, state: dict) -> None:
        """Template messages the Official Account sent to its followers: live reminders, Double 11."""
        followed, unfollowed = state["followed_at"], state["unfollowed_at"]
        if followed is None:
            return
        rng = person.rng
        campaigns = [
            (
                dt.datetime.combine(live_day - dt.timedelta(days=1), dt.time(18, 0), tzinfo=self.zone),
                live_id,
                f"直播预告:{title}",
            )
            for live_day, live_id, title in self.lives[-3:]
            if rng.random() < 0.5
        ]
        campaigns += [
            (
                dt.datetime.combine(day - dt.timedelta(days=1), dt.time(10, 0), tzinfo=self.zone),
                f"festival-{day:%m%d}",
                "双11活动提醒" if day.month == 11 else "618年中大促提醒",
            )
            for day in self.days
            if self._festival(day)
        ]
        for start, campaign_id, template in campaigns:
            moment = start + dt.timedelta(seconds=rng.randint(0, 900))
            if moment <= followed or moment >= self.now or (unfollowed and moment >= unfollowed):
                continue
            properties = {"campaign_id": campaign_id, "template": template, "message_type": "template"}
            ids = self._ids(person, "wechat_oa")
            self._emit(
                person, "wechat_oa", moment, "track", event="Message Sent", properties=properties, **ids
            )
            if rng.random() < 0.96:
                delivered = moment + dt.timedelta(seconds=rng.randint(1, 30))
                self._emit(
                    person,
                    "wechat_oa",
                    delivered,
                    "track",
                    event="Message Delivered",
                    properties=properties,
                    **ids,
                )


def _phone_as_typed(rng: random.Random, phone: str) -> str:
    """Systems write phone numbers every which way; identity resolution normalises them."""
    style = rng.random()
    if style < 0.6:
        return phone
    if style < 0.85:
        return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
    return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"


def demo_messages(*, people: int = DEMO_PEOPLE, now: dt.datetime | None = None, seed: int = DEMO_SEED):
    """Every demo message, oldest first, as ``(channel, message)``; the channel is a source kind."""
    generator = _Generator(_people(people, seed), now or timezone.now())
    for person in generator.people:
        generator.person(person)
    generator.messages.sort()
    return [(timed.channel, timed.message) for timed in generator.messages]


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class DemoCustomersResult:
    already_loaded: bool
    customers: int  # customers added, after merges
    identities: int
    events: int
    merges: int
    seconds: float


def demo_sources_ensure() -> dict[str, Source]:
    """The demo company's sources by kind, created once (found again by name)."""
    sources = {}
    for name, kind in DEMO_SOURCES:
        source = Source.objects.filter(name=name).order_by("pk").first()
        sources[kind] = source or source_create(name=name, kind=kind)
    return sources


def _counts() -> tuple[int, int, int, int]:
    return (
        Customer.objects.filter(merged_into__isnull=True).count(),
        Identity.objects.count(),
        Event.objects.count(),
        MergeLog.objects.count(),
    )


def _store(sources: dict[str, Source], messages: list[tuple[str, dict]], chunk_size: int) -> int:
    """Commits the messages to the inbox as a client would send them: per source, a few hundred at a
    time, in time order. One transaction, so the inbox holds all of them or none."""
    buffers: dict[str, list[dict]] = defaultdict(list)
    batches = 0
    with transaction.atomic():
        for channel, message in messages:
            buffer = buffers[channel]
            buffer.append(message)
            if len(buffer) >= chunk_size:
                inbox_store(source=sources[channel], events=buffer)
                buffers[channel] = []
                batches += 1
        for channel, buffer in buffers.items():
            if buffer:
                inbox_store(source=sources[channel], events=buffer)
                batches += 1
    return batches


def _drain(sources: dict[str, Source], timeout: float = 600.0) -> None:
    """Processes the inbox until none of the demo sources' batches is pending (a running worker may
    take some of them: then this waits for it)."""
    pending = IngestBatch.objects.filter(source__in=sources.values(), attempts__lt=MAX_ATTEMPTS)
    waited_since = None
    while True:
        before = pending.count()
        if not before:
            return
        # One request per transaction, as when they arrive over 90 days: a visitor is stored before
        # the login that links them, so the merges are real ones, with history (and undo).
        batches_process(limit=DRAIN_BATCHES, group=1)
        if pending.count() < before:
            waited_since = None
            continue
        waited_since = waited_since or time.monotonic()
        if time.monotonic() - waited_since > timeout:
            raise RuntimeError(f"{before} demo batches are still pending after {timeout:.0f} seconds.")
        time.sleep(0.2)


def demo_customers_load(
    *, people: int = DEMO_PEOPLE, now: dt.datetime | None = None, chunk_size: int = CHUNK_SIZE
) -> DemoCustomersResult:
    """Loads the demo customers and their events once. Run again, it only finishes an interrupted load."""
    started = time.monotonic()
    sources = demo_sources_ensure()
    before = _counts()
    _drain(sources)
    order_system = Source.objects.get(pk=sources[Source.Kind.SERVER].pk)
    already_loaded = order_system.event_count > 0
    if not already_loaded:
        _store(sources, demo_messages(people=people, now=now), chunk_size)
        _drain(sources)
    after = _counts()
    return DemoCustomersResult(
        already_loaded,
        *(new - old for new, old in zip(after, before, strict=True)),
        seconds=time.monotonic() - started,
    )
