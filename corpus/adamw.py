# AdamW (Loshchilov & Hutter 2019), Adam with decoupled weight decay; mirrors
# torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01): torch first
# shrinks w by (1 - lr * weight_decay), then takes the Adam step (eps placed as in adam.py).
def adamw(w, g, m, v, lr=1e-3, step, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  m_hat = m / (1 - beta1 ** step)
  v_hat = v / (1 - beta2 ** step)
  update = lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)
  return update, m, v
