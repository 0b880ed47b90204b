# A raw-looking Program 4, for tests of dead-code removal: Program 4 of Chen et al., "Symbolic
# Discovery of Optimization Algorithms" (arXiv 2302.06675, NeurIPS 2023) padded with dead
# statements of different kinds (the paper's own raw program, "Program 8" of its appendix, is
# not available). Removing exactly the padding lines gives back corpus/program4.py line for line.
# Every padding line is dead within one step except the one under padding-across-steps: it only
# feeds state m, which the next step overwrites before reading it, so it is dead only to a
# liveness analysis across steps (like Program 4's own `m = cosh(update)`).
# padding: 11 12 13 15 16 18 21 24 25 26 28 29 32 35 37
# padding-across-steps: 35
def train(w, g, m, v, lr):
  n = global_norm(g)  # dead: a reduction whose result is never read
  wd = cos(w)  # dead: overwritten by `wd = w * 0.4602` before it is read
  update = exp(g)  # dead: overwritten by `update = m / abs_m` before it is read
  g = clip(g, lr)
  d = dot(g, w)  # dead: a chain of dead temporaries, a reduction read only by the next line
  d = d * lr  # dead: the end of that chain, never read
  g = arcsin(g)
  g3 = maximum(g, 0)  # dead: never read
  m = interp(g, v, 0.899)
  m2 = m * m
  s = interp(g, m, 0.5)  # dead: never read
  v = interp(g, m, 1.109)
  abs_m = sqrt(m2)
  t = tanh(m2)  # dead: a chain of three dead statements on one name, t is never returned
  t = t + v  # dead: read only by the next line
  t = sqrt(t)  # dead: never read
  update = m / abs_m
  k = w * 3  # dead: augmented assignment of a name that is never read
  k += g  # dead: never read
  wd = w * 0.4602
  update = update + wd
  lr2 = lr ** 2  # dead: read only by the dead `u2 = update * lr2`
  lr = lr * 0.0002
  m = cosh(update)
  m = m * m  # dead across steps: feeds only state m, which the next step overwrites unread
  update = update * lr
  u2 = update * lr2  # dead: never read
  return update, m, v
