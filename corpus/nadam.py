# NAdam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), as torch.optim.NAdam(params,
# lr=2e-3, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3) computes it: the momentum schedule
# mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * psi)) and its running product, a state that starts at 1.
def nadam(w, g, m, v, mu_product: state = 1, lr=2e-3, step, beta1=0.9, beta2=0.999, eps=1e-8, psi=4e-3):
  mu = beta1 * (1 - 0.5 * 0.96 ** (step * psi))
  mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * psi))
  mu_product = mu_product * mu
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  denom = sqrt(v / (1 - beta2 ** step)) + eps
  update = lr * (1 - mu) / (1 - mu_product) * g / denom
  update += lr * mu_next / (1 - mu_product * mu_next) * m / denom
  return update, m, v, mu_product
