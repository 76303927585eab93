from setuptools import find_packages, setup

setup(
    name='d2l_dcgan',
    version='0.1.0',
    description="The DCGAN chapter of Dive into Deep Learning as an MXNet Gluon package",
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['d2l_dcgan', 'd2l_dcgan.*']),
    # 3.8-3.11 with pip: the stack MXNet 1.9.1 was released for (d2l pins numpy 1.23.5);
    # 3.12+ or beside numpy 2: uv with tools/overrides.txt, and d2l_dcgan.compat at import
    python_requires='>=3.8',
    license='MIT',  # the book's code in it: MIT-0 (see LICENSE)
    classifiers=[
        'Programming Language :: Python :: 3',
        *(f'Programming Language :: Python :: 3.{v}' for v in range(8, 14)),
        'Operating System :: POSIX :: Linux',
        'License :: OSI Approved :: MIT License',
    ],
    install_requires=[
        'd2l==1.0.3',
        'numpy>=1.17',  # d2l_dcgan.compat puts back what mxnet 1.9.1 reads from numpy >= 1.24
        'matplotlib',
        'ipython<9',  # d2l 1.0.3's matplotlib-inline 0.1.6 fails with IPython 9 (overridden there)
        'Pillow',
        'tqdm',
        'setuptools; python_version >= "3.12"',  # provides distutils, which mxnet imports
    ],
    extras_require={
        # mxnet and mxnet-cu112 both provide the `mxnet` module: pick one
        'cpu': ['mxnet==1.9.1'],
        # mxnet-cu112 bundles none of the CUDA 11 libraries it links: these wheels bring them
        # (each comment: the soname it provides that libmxnet.so needs), and d2l_dcgan.gpu
        # preloads them from site-packages/nvidia/*/lib before `import mxnet`. The NVIDIA driver
        # (libcuda.so.1) comes from the machine: any driver for CUDA 11.x or later.
        'cu112': [
            'mxnet-cu112==1.9.1',
            'nvidia-cuda-runtime-cu11==11.8.89',  # libcudart.so.11.0
            'nvidia-cublas-cu11==11.11.3.6',  # libcublas.so.11, libcublasLt.so.11
            'nvidia-cudnn-cu11==8.9.6.50',  # libcudnn.so.8 (9.x is libcudnn.so.9)
            'nvidia-cufft-cu11==10.9.0.58',  # libcufft.so.10
            'nvidia-curand-cu11==10.3.0.86',  # libcurand.so.10
            'nvidia-cusolver-cu11==11.4.1.48',  # libcusolver.so.11
            'nvidia-cuda-nvrtc-cu11==11.8.89',  # libnvrtc.so.11.2 (+ libnvrtc-builtins.so.11.8)
            'nvidia-nccl-cu11==2.21.5',  # libnccl.so.2
            'nvidia-nvtx-cu11==11.8.86',  # libnvToolsExt.so.1
        ],
        'test': ['pytest'],
    },
    entry_points={'console_scripts': ['d2l-dcgan=d2l_dcgan.cli:main']},
)
