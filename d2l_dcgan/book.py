"""The chapter's MXNet code as the book writes it (sec_dcgan, d2l v1.0.3): `nn.Block`s run
imperatively. d2l 1.0.3 ships `d2l.update_D` and `d2l.update_G` but not these nets, so they are
copied here verbatim (only n_G and n_D made parameters), for `crosscheck` and the benchmark."""
from mxnet.gluon import nn


class G_block(nn.Block):
    def __init__(self, channels, kernel_size=4,
                 strides=2, padding=1, **kwargs):
        super(G_block, self).__init__(**kwargs)
        self.conv2d_trans = nn.Conv2DTranspose(
            channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = nn.BatchNorm()
        self.activation = nn.Activation('relu')

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(nn.Block):
    def __init__(self, channels, kernel_size=4, strides=2,
                 padding=1, alpha=0.2, **kwargs):
        super(D_block, self).__init__(**kwargs)
        self.conv2d = nn.Conv2D(
            channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = nn.BatchNorm()
        self.activation = nn.LeakyReLU(alpha)

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d(X)))


def chapter_nets(n_G=64, n_D=64):
    """(net_D, net_G) of the chapter's cells."""
    net_G = nn.Sequential()
    net_G.add(G_block(n_G*8, strides=1, padding=0),  # Output: (64 * 8, 4, 4)
              G_block(n_G*4),  # Output: (64 * 4, 8, 8)
              G_block(n_G*2),  # Output: (64 * 2, 16, 16)
              G_block(n_G),    # Output: (64, 32, 32)
              nn.Conv2DTranspose(
                  3, kernel_size=4, strides=2, padding=1, use_bias=False,
                  activation='tanh'))  # Output: (3, 64, 64)
    net_D = nn.Sequential()
    net_D.add(D_block(n_D),   # Output: (64, 32, 32)
              D_block(n_D*2),  # Output: (64 * 2, 16, 16)
              D_block(n_D*4),  # Output: (64 * 4, 8, 8)
              D_block(n_D*8),  # Output: (64 * 8, 4, 4)
              nn.Conv2D(1, kernel_size=4, use_bias=False))  # Output: (1, 1, 1)
    return net_D, net_G
