# SGD with Nesterov momentum as torch does it; mirrors torch.optim.SGD(params, lr=1e-3,
# momentum=0.9, nesterov=True) with dampening 0: `buf = momentum * buf + g`, then the step uses
# `g + momentum * buf` (Sutskever et al. 2013, in torch's reformulation).
def nesterov(w, g, buf, lr=1e-3, momentum=0.9):
  buf = momentum * buf + g
  update = lr * (g + momentum * buf)
  return update, buf
