# Plain stochastic gradient descent; mirrors torch.optim.SGD(params, lr=1e-3) (momentum 0,
# dampening 0, weight_decay 0). lr is the learning-rate input, as torch's param_group["lr"].
def sgd(w, g, lr=1e-3):
  update = lr * g
  return update
