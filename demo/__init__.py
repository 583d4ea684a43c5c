"""The quick start: one first night against the embedded simulator, then a restatement walked through. It sits on
top of everything (it loads `definitions`), so nothing below ever imports it."""
