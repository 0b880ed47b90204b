# Program 1 of Chen et al., "Symbolic Discovery of Optimization Algorithms" (arXiv 2302.06675,
# NeurIPS 2023): Lion, the paper's final hand-simplified algorithm, with the paper's Greek names.
# The paper leaves the hyperparameters symbolic; defaults here: β1 = 0.9 and β2 = 0.99 (derived
# from Program 4), λ = 0.01 (decoupled weight decay, multiplied by lr as in the official code),
# lr 1e-4 (lion-pytorch's default).
def train(weight, gradient, momentum, lr=1e-4, β1=0.9, β2=0.99, λ=0.01):
  update = interp(gradient, momentum, β1)
  update = sign(update)
  momentum = interp(gradient, momentum, β2)
  weight_decay = weight * λ
  update = update + weight_decay
  update = update * lr
  return update, momentum
