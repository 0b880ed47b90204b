# sign_by_division.py with sign(c) itself
def f(w, g, m, lr):
  c = interp(g, m, 0.9)
  update = sign(c) * lr
  m = interp(g, m, 0.99)
  return update, m
