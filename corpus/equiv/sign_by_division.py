# sign(c) written as c / abs(c): sign.py where c is non-zero under math; not under hero
def f(w, g, m, lr):
  c = interp(g, m, 0.9)
  update = c / abs(c) * lr
  m = interp(g, m, 0.99)
  return update, m
