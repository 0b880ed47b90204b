"""SymPy at the edge: translate programs in, run targeted transforms, translate back."""
