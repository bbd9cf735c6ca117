"""The quick-start reader (tests/clients/quickstart.py), without running anything."""

from __future__ import annotations

import pytest

from tests.clients.quickstart import File, Step, parse

README = """# x

## Install

```sh
not part of it
```

## Quick start

Write this:

```python title="app.py"
print("hi")
```

```sh
python app.py
# expect: hi
```

```text
hi
```

## Next
```sh
nor this
```
"""


def test_files_and_steps_in_order_from_the_section_only() -> None:
    assert parse(README) == [File(13, "app.py", 'print("hi")\n'), Step(17, "python app.py\n# expect: hi\n", ("hi",))]


def test_a_block_that_is_neither_run_nor_written_is_refused() -> None:
    with pytest.raises(AssertionError, match=r"```js block"):
        parse(README.replace('```python title="app.py"', "```js"))


def test_a_quick_start_that_checks_nothing_is_refused() -> None:
    with pytest.raises(AssertionError, match="no step has an `# expect:`"):
        parse(README.replace("# expect: hi\n", ""))


def test_no_section_is_refused() -> None:
    with pytest.raises(AssertionError, match="no '## Quick start'"):
        parse(README.replace("## Quick start", "## Later"))
