"""Counting the ask's impressions and clicks without a database write per view.

Each web process adds events up in memory, keyed by (UTC day, campaign slug, variant key, normalised
article URL), and :func:`flush` writes the sums in one transaction: articles inserted or updated, and
``ask_counts`` rows incremented with ``INSERT … ON CONFLICT DO UPDATE``, so batches from several processes
(or several flushes racing) add up exactly.

When it is written: a daemon thread per web process flushes every COUNT_FLUSH_SECONDS, or sooner when the
buffer holds COUNT_FLUSH_EVENTS distinct keys, and once more when the process exits (``atexit``).
With COUNT_FLUSH_SECONDS = 0 there is no thread and the counting request flushes itself (tests).

There is no scheduler job for this: the counts live in the memory of the web process that received
them, and the scheduler runs in a process of its own that serves no requests, so it has nothing to write.

A flush that fails (the database is away) puts its counts back for the next try. The buffer is bounded
(COUNT_BUFFER_MAX distinct keys): events for new keys beyond it are dropped, counted, and logged.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone

from flask import Flask
from sqlalchemy import func, select

from ..extensions import db
from .models import Article, AskCount, Campaign, CampaignVariant

log = logging.getLogger(__name__)

#: How many rows one INSERT (and one IN list) carries; PostgreSQL takes up to 65535 bound parameters.
CHUNK = 500

Key = tuple[date, str, str, str]


@dataclass
class Batch:
    """Counts added up in memory: a process's buffer, or one batch taken from it to be written."""

    #: (day, campaign slug, variant key, url) -> [impressions, clicks]
    counts: dict[Key, list[int]]
    #: url -> (section, author, title) as last reported; None where the page gave none
    meta: dict[str, tuple[str | None, str | None, str | None]]


_lock = threading.Lock()
_buffer = Batch({}, {})
#: Events dropped because the buffer was full, since the last log line.
_dropped = 0
_wake = threading.Event()
#: The process that runs the flushing thread: a forked worker (gunicorn --preload) starts its own.
_thread_pid: int | None = None


def record(kind: str, campaign: str, variant: str, url: str, section: str | None = None,
           author: str | None = None, title: str | None = None, today: date | None = None) -> bool:
    """Add one impression or click (``kind``) to the buffer; the caller has validated and normalised it.
    False when the buffer is full and the event was dropped."""
    global _dropped
    key = (today or datetime.now(timezone.utc).date(), campaign, variant, url)
    column = 0 if kind == "impression" else 1
    with _lock:
        counts = _buffer.counts.get(key)
        if counts is None:
            if len(_buffer.counts) >= _limit():
                _dropped += 1
                return False
            counts = _buffer.counts[key] = [0, 0]
        counts[column] += 1
        if section or author or title:
            old = _buffer.meta.get(url, (None, None, None))
            _buffer.meta[url] = (section or old[0], author or old[1], title or old[2])
        size = len(_buffer.counts)
    if size >= _flush_events():
        _wake.set()
    return True


def pending() -> int:
    """How many distinct keys wait to be written."""
    with _lock:
        return len(_buffer.counts)


def discard() -> None:
    """Forget everything buffered (tests start from nothing)."""
    global _buffer, _dropped
    with _lock:
        _buffer = Batch({}, {})
        _dropped = 0


def _take() -> Batch:
    global _buffer
    with _lock:
        taken, _buffer = _buffer, Batch({}, {})
    return taken


def _put_back(taken: Batch) -> None:
    """A failed batch's counts go back in front of what arrived meanwhile, as far as the buffer's cap allows."""
    global _dropped
    with _lock:
        for key, (impressions, clicks) in taken.counts.items():
            counts = _buffer.counts.get(key)
            if counts is None:
                if len(_buffer.counts) >= _limit():
                    _dropped += impressions + clicks
                    continue
                counts = _buffer.counts[key] = [0, 0]
            counts[0] += impressions
            counts[1] += clicks
        for url, meta in taken.meta.items():
            _buffer.meta.setdefault(url, meta)


def flush() -> dict[str, int]:
    """Write the buffered counts in one transaction (needs an app context); returns what was written.

    Campaigns and variants are looked up by slug and key; events for ones that do not exist (a stale page,
    a made-up request) are dropped and counted in the log line, never an error. Rows are written in key
    order, so concurrent flushes lock rows in the same order and cannot deadlock each other.
    """
    global _dropped
    taken = _take()
    with _lock:
        dropped_full, _dropped = _dropped, 0
    if dropped_full:
        log.warning("ask counts: %d events dropped because the buffer was full (COUNT_BUFFER_MAX)", dropped_full)
    if not taken.counts:
        return {"rows": 0, "unknown": 0}
    try:
        result = write_batch(taken)
    except Exception:
        db.session.rollback()
        if not _database_answers():
            _put_back(taken)
            log.exception("ask counts: writing %d rows failed; kept for the next try", len(taken.counts))
            raise
        # The database is there but refused the batch: a row it will never take (a value past a limit) must not
        # hold back every count after it, so the rows go one by one and only the refused ones are dropped.
        log.exception("ask counts: a batch of %d rows was refused; writing them one by one", len(taken.counts))
        result = _write_each(taken)
    if result["unknown"]:
        log.info("ask counts: %d events for unknown campaigns or variants dropped", result["unknown"])
    return result


def _database_answers() -> bool:
    try:
        db.session.execute(select(1))
        return True
    except Exception:  # noqa: BLE001  (whatever the driver raises, the database is not answering)
        db.session.rollback()
        return False
    finally:
        db.session.rollback()


def _write_each(taken: Batch) -> dict[str, int]:
    """Write a refused batch one key at a time, dropping (and logging) the keys the database refuses; if the
    database stops answering meanwhile, what is left goes back to the buffer."""
    result = {"rows": 0, "unknown": 0}
    keys = list(taken.counts)
    for index, key in enumerate(keys):
        url = key[3]
        single = Batch({key: taken.counts[key]}, {url: taken.meta[url]} if url in taken.meta else {})
        try:
            written = write_batch(single)
        except Exception:
            db.session.rollback()
            if not _database_answers():
                rest = {k: taken.counts[k] for k in keys[index:]}
                _put_back(Batch(rest, {k[3]: taken.meta[k[3]] for k in rest if k[3] in taken.meta}))
                raise
            log.warning("ask counts: dropped %s impressions and %s clicks the database refused for %r",
                        *taken.counts[key], key)
            continue
        result["rows"] += written["rows"]
        result["unknown"] += written["unknown"]
    return result


def write_batch(taken: Batch) -> dict[str, int]:
    """Write one batch and commit; on an error nothing of it is written (the caller rolls back)."""
    result = _write(taken)
    db.session.commit()
    return result


def _write(taken: Batch) -> dict[str, int]:
    slugs = sorted({key[1] for key in taken.counts})
    campaigns = dict(db.session.execute(select(Campaign.slug, Campaign.id).where(Campaign.slug.in_(slugs))).all())
    variants = {
        (campaign_id, key): variant_id
        for variant_id, campaign_id, key in db.session.execute(
            select(CampaignVariant.id, CampaignVariant.campaign_id, CampaignVariant.key)
            .where(CampaignVariant.campaign_id.in_(list(campaigns.values()) or [-1])))
    }
    known: dict[tuple[date, int, int, str], list[int]] = {}
    unknown = 0
    for (day, slug, key, url), counts in taken.counts.items():
        campaign_id = campaigns.get(slug)
        variant_id = variants.get((campaign_id, key)) if campaign_id is not None else None
        if variant_id is None:
            unknown += sum(counts)
            continue
        known[(day, campaign_id, variant_id, url)] = counts
    if not known:
        return {"rows": 0, "unknown": unknown}
    article_ids = _upsert_articles(sorted({url for *_, url in known}), taken.meta)
    rows = sorted(
        ({"day": day, "campaign_id": campaign_id, "variant_id": variant_id, "article_id": article_ids[url],
          "impressions": impressions, "clicks": clicks}
         for (day, campaign_id, variant_id, url), (impressions, clicks) in known.items()),
        key=lambda row: (row["day"], row["campaign_id"], row["variant_id"], row["article_id"]),
    )
    insert = _insert()
    for start in range(0, len(rows), CHUNK):
        statement = insert(AskCount).values(rows[start:start + CHUNK])
        db.session.execute(statement.on_conflict_do_update(
            index_elements=["day", "campaign_id", "variant_id", "article_id"],
            set_={"impressions": AskCount.impressions + statement.excluded.impressions,
                  "clicks": AskCount.clicks + statement.excluded.clicks},
        ))
    return {"rows": len(rows), "unknown": unknown}


def _upsert_articles(urls: list[str], meta: dict) -> dict[str, int]:
    """Each URL's article id, inserting new articles; section, author and title are updated where the page
    reported them (a page without the meta tag keeps what an earlier view reported)."""
    from ..db import now_utc

    insert = _insert()
    ids: dict[str, int] = {}
    for start in range(0, len(urls), CHUNK):
        chunk = urls[start:start + CHUNK]
        values = []
        for url in chunk:
            section, author, title = meta.get(url, (None, None, None))
            values.append({"url": url, "section": section, "author": author, "title": title,
                           "created_at": now_utc()})
        statement = insert(Article).values(values)
        db.session.execute(statement.on_conflict_do_update(
            index_elements=["url"],
            set_={name: func.coalesce(getattr(statement.excluded, name), getattr(Article, name))
                  for name in ("section", "author", "title")},
        ))
        ids.update(db.session.execute(select(Article.url, Article.id).where(Article.url.in_(chunk))).all())
    return ids


def _insert():
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# -- the flushing thread ---------------------------------------------------------------------------

_settings = {"events": 1000, "limit": 100_000}


def _flush_events() -> int:
    return _settings["events"]


def _limit() -> int:
    return _settings["limit"]


def configure(app: Flask) -> None:
    """Read the buffer's settings (create_app calls this)."""
    _settings["events"] = app.config["COUNT_FLUSH_EVENTS"]
    _settings["limit"] = app.config["COUNT_BUFFER_MAX"]


def ensure_flushing(app: Flask) -> threading.Thread | None:
    """Start this process's flushing thread, once per process (a worker forked from a preloaded master
    inherits no threads, so it starts its own), and flush at exit. Nothing when COUNT_FLUSH_SECONDS is 0."""
    global _thread_pid
    seconds = app.config["COUNT_FLUSH_SECONDS"]
    if not seconds or _thread_pid == os.getpid():
        return None
    with _lock:
        if _thread_pid == os.getpid():
            return None
        _thread_pid = os.getpid()
    thread = threading.Thread(target=_run, args=(app, seconds), name="ask-counts", daemon=True)
    thread.start()
    atexit.register(_flush_in, app)
    return thread


def stop_flushing() -> None:
    """End this process's flushing thread after its current flush (tests)."""
    global _thread_pid
    _thread_pid = None
    _wake.set()


def _run(app: Flask, seconds: float) -> None:
    pid = os.getpid()
    while _thread_pid == pid:
        _wake.wait(seconds)
        _wake.clear()
        if _thread_pid != pid:
            return
        _flush_in(app)


def _flush_in(app: Flask) -> None:
    """One flush in an app context of its own; a failure is logged (flush keeps the counts) and waits."""
    with app.app_context():
        try:
            flush()
        except Exception:  # noqa: BLE001  (logged by flush; the thread must live on)
            pass
        finally:
            db.session.remove()
