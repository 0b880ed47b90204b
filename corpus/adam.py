# Adam (Kingma & Ba 2015) with bias correction; mirrors torch.optim.Adam(params, lr=1e-3,
# betas=(0.9, 0.999), eps=1e-8). `step` is the 1-based step count. torch's eps placement: eps is
# added to the bias-corrected root, sqrt(v / (1 - beta2 ** step)) + eps.
def adam(w, g, m, v, lr=1e-3, step, beta1=0.9, beta2=0.999, eps=1e-8):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  m_hat = m / (1 - beta1 ** step)
  v_hat = v / (1 - beta2 ** step)
  update = lr * m_hat / (sqrt(v_hat) + eps)
  return update, m, v
