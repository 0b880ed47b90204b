# Adam storing 10x its first moment (unnormalised EMA) and 4x its second, states swapped
def adam_scaled(w, g, v4, m10, lr, step):
  m10 = 0.9 * m10 + g
  v4 = 0.999 * v4 + 0.004 * g * g
  update = lr * (m10 / 10) / (1 - 0.9 ** step) / (sqrt(v4 / 4 / (1 - 0.999 ** step)) + 1e-8)
  return update, v4, m10
