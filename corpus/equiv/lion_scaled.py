# Lion with Program 4's constants and its lr scale 2e-4: Program 4 without its clip and arcsin lines
# is this optimizer where the interpolated momentum is non-zero (issue 5's first pair).
def lion(w, g, m, lr, beta1=0.899, beta2=0.996991, weight_decay=0.4602):
  c = interp(g, m, beta1)
  update = (sign(c) + weight_decay * w) * (lr * 0.0002)
  m = interp(g, m, beta2)
  return update, m
