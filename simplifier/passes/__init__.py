"""Program -> Program transformations; each pass is a small frozen dataclass (see base.py)."""
