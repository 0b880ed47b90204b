# AMSGrad (Reddi, Kale & Kumar 2018), as torch.optim.Adam(params, lr=1e-3, amsgrad=True) computes
# it: the running maximum of v (not of its bias-corrected value) under the root, eps added after
# the bias-corrected root, sqrt(v_max) / sqrt(1 - beta2 ** step) + eps.
def amsgrad(w, g, m, v, v_max, lr=1e-3, step, beta1=0.9, beta2=0.999, eps=1e-8):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  v_max = maximum(v_max, v)
  denom = sqrt(v_max) / sqrt(1 - beta2 ** step) + eps
  update = lr / (1 - beta1 ** step) * m / denom
  return update, m, v, v_max
