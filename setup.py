from setuptools import find_packages, setup

setup(
    name='d2l_dcgan',
    version='0.1.0',
    description="The DCGAN chapter of Dive into Deep Learning as an MXNet Gluon package",
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['d2l_dcgan', 'd2l_dcgan.*']),
    python_requires='>=3.8,<3.12',
    install_requires=[
        'd2l==1.0.3',
        'numpy>=1.17,<1.24',  # mxnet 1.9.1 uses np.bool, removed in numpy 1.24
        'matplotlib',
        'ipython<9',  # d2l 1.0.3's plotting imports IPython's backend2gui, gone in IPython 9
        'Pillow',
        'tqdm',
    ],
    extras_require={
        # mxnet and mxnet-cu112 both provide the `mxnet` module: pick one
        'cpu': ['mxnet==1.9.1'],
        'cu112': ['mxnet-cu112==1.9.1'],
        'test': ['pytest'],
    },
    entry_points={'console_scripts': ['d2l-dcgan=d2l_dcgan.cli:main']},
)
