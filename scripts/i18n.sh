#!/usr/bin/env bash
# Keeps the message catalogs in step with the code (README's developer's guide, "Translations"):
#   bash scripts/i18n.sh   extracts every message (templates' {% trans %} / _(), Python's _(),
#                          gettext(), ngettext()) and merges the new ones into each language's .po
# Then translate the empty msgstr entries of src/mlworkshop/locale/{zh_CN,zh_TW}/LC_MESSAGES/
# mlworkshop.po; tests/unit/test_i18n_catalogs.py fails while one is missing. No .mo files: the
# catalogs are compiled in memory when first used (mlworkshop/i18n.py).
set -euo pipefail
cd "$(dirname "$0")/.."
L=src/mlworkshop/locale
pot=$(mktemp --suffix=.pot)
trap 'rm -f "$pot"' EXIT
.venv/bin/pybabel -q extract -F "$L/babel.cfg" --no-location --sort-output --omit-header -o "$pot" .
for lang in zh_CN zh_TW; do
  .venv/bin/pybabel -q update --no-fuzzy-matching --ignore-pot-creation-date --ignore-obsolete \
    -D mlworkshop -l "$lang" -i "$pot" -d "$L"
done
echo "$(grep -c '^msgid ' "$pot") messages; untranslated in each catalog:"
for po in "$L"/zh_*/LC_MESSAGES/mlworkshop.po; do
  echo "  $po: $(.venv/bin/python -c 'import sys; from babel.messages.pofile import read_po; print(sum(1 for m in read_po(open(sys.argv[1], "rb")) if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))))' "$po")"
done
