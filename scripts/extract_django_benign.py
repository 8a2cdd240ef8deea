"""Extract benign interface sentences in English, German, French, Spanish and Italian from Django's translation
catalogues (BSD-3-Clause) into turnout/eval/data/injection/train/django.jsonl: benign training rows for
scripts/train_injection_detector.py, so that every language has plenty of ordinary text (form errors, help
texts, confirmations, many of them imperatives: "Please correct the errors below.") beside its injections.

    pip download --no-deps django==5.2.19 -d /tmp/django && python scripts/extract_django_benign.py /tmp/django/django-5.2.19-py3-none-any.whl

Only messages of 25–300 characters are kept, with their %(name)s / %s / {name} placeholders replaced by a word."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "turnout/eval/data/injection/train/django.jsonl"
LANGS = ("de", "fr", "es", "it")
_PLACEHOLDER = re.compile(r"%\([^)]*\)[sdif]|%[sdif]|\{[^}]*\}")
_ENTRY = re.compile(r'^(msgid|msgstr(?:\[0\])?) "(.*)"$')


def _unquote(s: str) -> str:
    return s.replace('\\"', '"').replace("\\n", " ").replace("\\t", " ").replace("\\\\", "\\")


def pairs(po: str) -> list[tuple[str, str]]:
    """(msgid, msgstr) of a .po catalogue, continuation lines joined."""
    out, key, fields = [], None, {}
    for line in po.splitlines() + [""]:
        m = _ENTRY.match(line)
        if m:
            key = m.group(1).split("[")[0]
            fields[key] = _unquote(m.group(2))
        elif line.startswith('"') and key:
            fields[key] += _unquote(line.strip()[1:-1])
        elif not line.strip():
            if fields.get("msgid") and fields.get("msgstr"):
                out.append((fields["msgid"], fields["msgstr"]))
            key, fields = None, {}
    return out


def clean(text: str) -> str | None:
    text = " ".join(_PLACEHOLDER.sub("item", text).split())
    return text if 25 <= len(text) <= 300 else None


def extract(wheel: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            parts = name.split("/")
            if not name.endswith(".po") or "locale" not in parts:
                continue
            lang = parts[parts.index("locale") + 1]
            if lang not in LANGS:
                continue
            for msgid, msgstr in pairs(z.read(name).decode("utf-8")):
                for text, text_lang in ((msgstr, lang), (msgid, "en")):
                    text = clean(text)
                    if text and text not in seen:
                        seen.add(text)
                        rows.append({"text": text, "label": 0, "lang": text_lang,
                                     "source": f"django:{'/'.join(parts[1:parts.index('locale')])}"})
    return rows


def main() -> None:
    rows = extract(Path(sys.argv[1]))
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
