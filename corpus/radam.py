# RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"), as
# torch.optim.RAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8) computes it: while the length
# of the approximated SMA rho_t is at most 5, a bias-corrected momentum step; after, the rectified
# adaptive step (a `where` on the step number; the unselected branch may be NaN).
def radam(w, g, m, v, lr=1e-3, step, beta1=0.9, beta2=0.999, eps=1e-8):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  m_hat = m / (1 - beta1 ** step)
  rho_inf = 2 / (1 - beta2) - 1
  rho = rho_inf - 2 * step * beta2 ** step / (1 - beta2 ** step)
  rect = sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
  adaptive = sqrt(1 - beta2 ** step) / (sqrt(v) + eps)
  update = lr * where(rho > 5, m_hat * adaptive * rect, m_hat)
  return update, m, v
