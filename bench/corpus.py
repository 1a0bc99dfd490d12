"""A deterministic synthetic corpus for ingestion and search benchmarks.

The generator writes many small Markdown and plain-text files of English, Chinese and mixed
paragraphs, with the structure real documentation has: a title, ``##`` sections, paragraphs,
bullet and numbered lists, and now and then a small table. The same ``seed`` always writes the
same bytes, so two runs benchmark the same corpus.

Size is controlled in chunks, not files: every section is sized between about 60% and 90% of
the chunk size, so the chunker (which packs whole sections while they fit) cannot put two
sections in one chunk and never has to split one. One section is then one chunk, and
``sections_for_chunks`` turns a wanted chunk count into a number of sections.

Words are drawn with Zipf-like frequencies from a small common vocabulary plus a few thousand
made-up rare terms (product codes, invented names, rare Chinese compounds), so the BM25 index
has the usual long tail: a few terms in almost every chunk, most terms in very few.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# -- vocabulary ------------------------------------------------------------------------------

_EN_COMMON = """
system service server client request response cache index query search result document file
folder network storage memory disk process thread queue worker job task schedule deploy release
version update upgrade install configure setting option parameter value default limit timeout
retry error warning failure incident alert monitor metric log trace latency throughput capacity
backup restore snapshot replica cluster node region zone load balancer gateway proxy route
policy access permission role user account team owner review approve change ticket report
budget cost invoice contract vendor customer order payment shipment warehouse inventory stock
supplier product feature module component library package build test pipeline stage branch
merge commit patch hotfix rollback migration schema table column record field key secret token
certificate password encryption audit compliance privacy retention archive export import format
travel expense flight hotel meeting office room desk badge visitor safety training holiday
leave benefit salary payroll onboarding offboarding laptop printer wifi router firmware device
sensor battery pump valve motor engine fuel filter pressure temperature humidity voltage current
maintenance inspection repair warranty manual guide handbook procedure checklist step section
data model training evaluation accuracy precision recall dataset label feature embedding vector
""".split()

_EN_GLUE = """
the a an of to in for on with by from at as is are was be can should must will may
and or but not when if then after before during while each every all some any this that
these those new old first last daily weekly monthly quickly safely always never usually
""".split()

_EN_VERBS = """
check verify update restart stop start enable disable send receive store read write delete
create open close submit approve reject track measure compare reduce increase replace rotate
clean inspect record report escalate notify assign schedule review book cancel confirm
""".split()

# Common Chinese words of the same domains (each a few characters, as jieba would cut them).
_ZH_COMMON = """
系统 服务 服务器 客户端 请求 响应 缓存 索引 查询 搜索 结果 文档 文件 目录 网络 存储 内存
磁盘 进程 线程 队列 任务 计划 部署 发布 版本 更新 升级 安装 配置 设置 选项 参数 默认 限制
超时 重试 错误 警告 故障 事件 告警 监控 指标 日志 延迟 吞吐量 容量 备份 恢复 快照 副本 集群
节点 区域 负载 网关 代理 路由 策略 权限 角色 用户 账户 团队 负责人 审核 批准 变更 工单 报告
预算 成本 发票 合同 供应商 客户 订单 付款 发货 仓库 库存 产品 功能 模块 组件 测试 流水线
分支 合并 提交 补丁 回滚 迁移 数据库 字段 密钥 证书 密码 加密 审计 合规 隐私 归档 导出 导入
差旅 报销 航班 酒店 会议 办公室 访客 安全 培训 假期 福利 工资 入职 离职 电脑 打印机 路由器
固件 设备 传感器 电池 水泵 阀门 电机 发动机 燃料 过滤器 压力 温度 湿度 电压 电流 维护 检查
维修 保修 手册 指南 流程 步骤 章节 数据 模型 训练 评估 准确率 召回率 数据集 标签 向量 茶叶
绿茶 红茶 乌龙茶 图书馆 借阅 期刊 读者 城市 历史 文化 博物馆 公园 河流 山脉 铁路 机场 港口
""".split()

_ZH_GLUE = """
的 了 和 与 在 对 将 把 被 从 向 按 每 各 所有 需要 应该 必须 可以 不能 已经 正在 如果 然后
之前 之后 期间 同时 以及 或者 但是 因此 通常 每天 每周 每月 及时 安全地 首先 最后
""".split()

_ZH_VERBS = """
检查 确认 更新 重启 停止 启动 启用 禁用 发送 接收 保存 读取 写入 删除 创建 打开 关闭 提交
批准 拒绝 跟踪 测量 比较 降低 提高 更换 轮换 清洁 巡检 记录 上报 升级处理 通知 分配 安排
审阅 预订 取消
""".split()

# Characters that build the rare Chinese compounds (common ones, so the tokenizer sees them).
_ZH_CHARS = (
    "安北长城川大东方丰光海汉和河红华黄江金京锦康兰乐林龙鹿明南宁平青庆泉瑞山上盛顺松泰天"
    "田通万文西仙祥新星兴阳永玉元云泽正中舟竹宝春德风福高古广国恒宏湖辉吉佳嘉建景静君凯力"
    "良隆美民铭鹏启千秋荣瑞森祥信雄旭雅益英友宇源远月志智忠州卓"
)

_SYLLABLES = "ka lo mi ren tor vex quin dal sor bel mar tis zen phor lu cam dra nov est pel rix gan hel".split()


@dataclass
class _Vocabulary:
    en: list[str]
    en_weights: list[float]
    zh: list[str]
    zh_weights: list[float]


def _zipf_cumulative(n: int, exponent: float = 1.05) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, n + 1)))


def _vocabulary(seed: int, rare_terms: int = 4000) -> _Vocabulary:
    """Common words first (most frequent), then made-up rare terms, with Zipf frequencies."""
    rng = random.Random(seed)
    en_rare: list[str] = []
    zh_rare: list[str] = []
    seen: set[str] = set()
    while len(en_rare) < rare_terms:
        if rng.random() < 0.4:
            term = f"{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}-{rng.randint(100, 9999)}"
        else:
            term = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        if term not in seen:
            seen.add(term)
            en_rare.append(term)
    while len(zh_rare) < rare_terms:
        term = "".join(rng.choice(_ZH_CHARS) for _ in range(rng.randint(2, 4)))
        if term not in seen:
            seen.add(term)
            zh_rare.append(term)
    en = list(_EN_COMMON) + en_rare
    zh = list(_ZH_COMMON) + zh_rare
    return _Vocabulary(en, _zipf_cumulative(len(en)), zh, _zipf_cumulative(len(zh)))


# -- text ------------------------------------------------------------------------------------


class _Writer:
    """Sentences, lists and sections in English or Chinese, sized in estimated model tokens.

    The estimate counts one token per common English word, per Chinese character and per
    punctuation mark, and two to three per made-up term; sections aim well inside the
    chunk size so estimate errors do not change how many chunks a section makes.
    """

    def __init__(self, rng: random.Random, vocab: _Vocabulary) -> None:
        self.rng = rng
        self.vocab = vocab

    def _en_word(self) -> str:
        return self.rng.choices(self.vocab.en, cum_weights=self.vocab.en_weights)[0]

    def _zh_word(self) -> str:
        return self.rng.choices(self.vocab.zh, cum_weights=self.vocab.zh_weights)[0]

    @staticmethod
    def estimate(text: str) -> int:
        tokens = 0
        for piece in text.split():
            cjk = sum(1 for ch in piece if "\u4e00" <= ch <= "\u9fff")
            rest = len(piece) - cjk
            tokens += cjk
            if rest:
                # Latin words: ~1 token per 4 letters for made-up terms, at least 1.
                tokens += max(1, round(rest / 4))
        return tokens

    def en_sentence(self, words: int) -> str:
        rng = self.rng
        out: list[str] = []
        for i in range(words):
            roll = rng.random()
            if roll < 0.35:
                out.append(rng.choice(_EN_GLUE))
            elif roll < 0.5:
                out.append(rng.choice(_EN_VERBS))
            else:
                out.append(self._en_word())
            if i and i % 9 == 0 and i < words - 2 and rng.random() < 0.5:
                out[-1] += ","
        if rng.random() < 0.15:
            out.insert(rng.randrange(len(out)), str(rng.randint(2, 2048)))
        text = " ".join(out)
        return text[:1].upper() + text[1:] + "."

    def zh_sentence(self, chars: int) -> str:
        rng = self.rng
        out: list[str] = []
        length = 0
        while length < chars:
            roll = rng.random()
            if roll < 0.3:
                word = rng.choice(_ZH_GLUE)
            elif roll < 0.45:
                word = rng.choice(_ZH_VERBS)
            else:
                word = self._zh_word()
            out.append(word)
            length += len(word)
            if length < chars - 4 and rng.random() < 0.12:
                out.append("，")
                length += 1
        if rng.random() < 0.15:
            out.insert(rng.randrange(len(out)), str(rng.randint(2, 2048)))
        return "".join(out) + "。"

    def sentence(self, lang: str, tokens: int) -> str:
        if lang == "zh":
            return self.zh_sentence(max(4, tokens - 1))
        return self.en_sentence(max(3, tokens - 1))

    def heading(self, lang: str) -> str:
        if lang == "zh":
            return "".join(self._zh_word() for _ in range(self.rng.randint(2, 3)))
        words = [self._en_word() for _ in range(self.rng.randint(2, 4))]
        return " ".join(words).capitalize()

    def body(self, lang: str, budget: int, markdown: bool) -> list[str]:
        """Blocks (paragraphs, a list, in Markdown sometimes a table) of about ``budget`` tokens."""
        rng = self.rng
        kind = rng.random()
        blocks: list[str] = []
        if markdown and kind < 0.04:
            return [self._table(lang, budget)]
        if kind < 0.55:
            # One or two paragraphs.
            parts = 1 if budget < 40 or rng.random() < 0.6 else 2
            for share in _split_budget(rng, budget, parts):
                blocks.append(self._paragraph(lang, share))
        else:
            # A lead-in sentence and a bullet or numbered list.
            lead = min(budget // 3, 14)
            blocks.append(self.sentence(lang, lead))
            remaining = budget - lead
            items = max(2, min(6, remaining // 8))
            numbered = markdown and rng.random() < 0.4  # plain text: partition_text splits "1." off
            lines = []
            for n, share in enumerate(_split_budget(rng, remaining, items), start=1):
                marker = f"{n}." if numbered else "-"
                lines.append(f"{marker} {self.sentence(lang, max(4, share - 1))}")
            blocks.append("\n".join(lines))
        return blocks

    def _paragraph(self, lang: str, budget: int) -> str:
        sentences: list[str] = []
        left = budget
        while left > 5:
            size = min(left, self.rng.randint(8, 22))
            sentences.append(self.sentence(lang, size))
            left -= self.estimate(sentences[-1])
        if not sentences:
            sentences.append(self.sentence(lang, max(budget, 4)))
        return (" " if lang == "en" else "").join(sentences)

    def _table(self, lang: str, budget: int) -> str:
        cols = 3
        rows = max(2, budget // 12)
        header = [self.heading(lang) for _ in range(cols)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * cols]
        for _ in range(rows - 1):
            cells = [self._zh_word() if lang == "zh" else self._en_word() for _ in range(cols - 1)]
            lines.append("| " + " | ".join([*cells, str(self.rng.randint(1, 999))]) + " |")
        return "\n".join(lines)


def _section(
    writer: _Writer,
    rng: random.Random,
    lang: str,
    suffix: str,
    low: int,
    high: int,
    count_tokens: Callable[[Sequence[str]], list[int]] | None,
) -> list[str]:
    """One section (heading and body) whose size in model tokens lies in ``[low, high]``."""
    target = rng.randint(low, high)
    budget = target
    for _ in range(8):
        heading = writer.heading(lang)
        body = writer.body(lang, max(8, budget - writer.estimate(heading)), markdown=suffix == ".md")
        blocks = [f"## {heading}" if suffix == ".md" else heading, *body]
        if count_tokens is None:
            return blocks
        # Markers ("##", "-", "1.") are counted too, so the parsed text is a little smaller.
        size = sum(count_tokens(blocks))
        if low <= size <= high:
            return blocks
        budget = max(8, budget + (target - size))
    return blocks


def _split_budget(rng: random.Random, total: int, parts: int) -> list[int]:
    cuts = sorted(rng.sample(range(1, max(parts + 1, total)), parts - 1)) if parts > 1 else []
    bounds = [0, *cuts, total]
    return [max(4, b - a) for a, b in zip(bounds, bounds[1:])]


# -- the corpus ------------------------------------------------------------------------------


@dataclass
class SyntheticCorpus:
    """What was written: where, how much, and a digest of the bytes (to prove determinism)."""

    root: str
    files: int
    sections: int
    bytes: int
    digest: str
    chunk_tokens: int
    seed: int
    languages: dict[str, int]
    suffixes: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def sections_for_chunks(chunks: int) -> int:
    """Sections to write for ``chunks`` chunks (one section is one chunk, by construction).

    A file's title is its own tiny element packed into the first section, and a few sections
    come out a little over half the chunk size and get packed with a neighbour; 2% extra
    covers both.
    """
    return int(chunks * 1.02) + 1


def write_corpus(
    root: str | Path,
    sections: int,
    chunk_tokens: int = 64,
    seed: int = 2018,
    mean_sections_per_file: int = 20,
    count_tokens: Callable[[Sequence[str]], list[int]] | None = None,
) -> SyntheticCorpus:
    """Write ``sections`` sections, in files under ``root``, each sized for one ``chunk_tokens`` chunk.

    ``count_tokens`` is the embedder's token counter; with it every section is checked and
    redrawn until it lies between 60% and 85% of the chunk size. Without it a rough estimate
    is used and some sections may come out as two chunks or share one.
    """
    if chunk_tokens < 32:
        raise ValueError("the synthetic corpus needs a chunk size of at least 32 tokens")
    root = Path(root)
    rng = random.Random(seed)
    vocab = _vocabulary(seed)
    writer = _Writer(rng, vocab)
    digest = hashlib.sha256()
    low, high = int(chunk_tokens * 0.6), int(chunk_tokens * 0.85)
    written_sections = files = total_bytes = 0
    languages = {"en": 0, "zh": 0, "mixed": 0}
    suffixes = {".md": 0, ".txt": 0}
    while written_sections < sections:
        count = min(
            sections - written_sections, rng.randint(mean_sections_per_file // 2, mean_sections_per_file * 3 // 2)
        )
        roll = rng.random()
        file_lang = "en" if roll < 0.4 else "zh" if roll < 0.7 else "mixed"
        suffix = ".md" if rng.random() < 0.7 else ".txt"
        languages[file_lang] += 1
        suffixes[suffix] += 1
        blocks: list[str] = []
        title_lang = "zh" if file_lang == "zh" else "en"
        title = writer.heading(title_lang)
        blocks.append(f"# {title}" if suffix == ".md" else title)
        for n in range(count):
            lang = file_lang if file_lang != "mixed" else ("en" if n % 2 == 0 else "zh")
            blocks.extend(_section(writer, rng, lang, suffix, low, high, count_tokens))
        text = "\n\n".join(blocks) + "\n"
        rel = Path(f"team-{files % 17:02d}") / f"topic-{(files // 17) % 23:02d}" / f"doc-{files:06d}{suffix}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        path.write_bytes(data)
        digest.update(rel.as_posix().encode() + b"\0" + data)
        total_bytes += len(data)
        written_sections += count
        files += 1
    return SyntheticCorpus(
        str(root), files, written_sections, total_bytes, digest.hexdigest(), chunk_tokens, seed, languages, suffixes
    )


def make_queries(count: int, seed: int = 7, corpus_seed: int = 2018) -> list[tuple[str, str]]:
    """``count`` distinct search queries as ``(language, text)``, about half English, half Chinese.

    They use the corpus vocabulary (common words and rare terms), phrased as users ask:
    keyword lists, questions, and short phrases with a code or a name in them.
    """
    rng = random.Random(seed)
    writer = _Writer(rng, _vocabulary(corpus_seed))
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    en_forms = [
        "How do I {v} the {a} {b}?",
        "What is the {a} {b} limit?",
        "{a} {b} {c}",
        "Why does {a} fail after {b}?",
        "{v} {a} {b} {c} {d}",
    ]
    zh_forms = ["如何{v}{a}{b}？", "{a}的{b}是多少？", "{a}{b}{c}", "为什么{a}在{b}之后失败？", "{v}{a}{b}{c}"]
    while len(out) < count:
        lang = "en" if len(out) % 2 == 0 else "zh"
        if lang == "en":
            words = {k: writer._en_word() for k in "abcd"}
            text = rng.choice(en_forms).format(v=rng.choice(_EN_VERBS), **words)
        else:
            words = {k: writer._zh_word() for k in "abcd"}
            text = rng.choice(zh_forms).format(v=rng.choice(_ZH_VERBS), **words)
        if text not in seen:
            seen.add(text)
            out.append((lang, text))
    return out


__all__ = ["SyntheticCorpus", "make_queries", "sections_for_chunks", "write_corpus"]
