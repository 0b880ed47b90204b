# Adamax (Kingma & Ba 2015, section 7.1: Adam with the infinity norm); mirrors
# torch.optim.Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8): torch's eps is added to |g|
# before the maximum, u = max(beta2 * u, |g| + eps), and only m is bias-corrected.
def adamax(w, g, m, u, lr=2e-3, step, beta1=0.9, beta2=0.999, eps=1e-8):
  m = interp(g, m, beta1)
  u = maximum(u * beta2, abs(g) + eps)
  update = lr / (1 - beta1 ** step) * m / u
  return update, m, u
