# Adam (corpus/adam.py), renamed, statements reordered, a dead statement and a dead state
def adam_renamed(p, grad, mom, sq, junk, lr, step, b1=0.9, b2=0.999, e=1e-8):
  sq = interp(grad * grad, sq, b2)
  unused = exp(p)
  mom = interp(grad, mom, b1)
  junk = junk + grad
  denom = sqrt(sq / (1 - b2 ** step)) + e
  u = lr * (mom / (1 - b1 ** step)) / denom
  return u, mom, sq, junk
