def train(w, g, v, lr):
  c = interp(g, v, 0.899)
  update = (sign(c) + w * 0.4602) * (lr * 0.0002)
  v = interp(g, v, 0.996991)
  return update, v
