# d2l-dcgan in a container, for macOS and Windows (Docker Desktop, Podman) and any Linux:
# Debian 13's Python 3.13 with numpy 2 (the install make does), the package with its tests.
# Runs the demo by default; `make train`, `make test` or `make notebook` after the image name
# run the others. The data cache (/cache) and the run folders (/d2l-dcgan/runs) are volumes,
# Jupyter's port is 8888. Commands: docs/container.md.
FROM debian:trixie-slim

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    D2L_DCGAN_CACHE=/cache
RUN apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends python3 python3-venv make ca-certificates && \
    rm -rf /var/lib/apt/lists/*
# a notebook in a container: reachable through the published port, no browser, run as root
RUN mkdir -p /etc/jupyter && \
    echo '{"ServerApp": {"ip": "0.0.0.0", "open_browser": false, "allow_root": true}}' \
        >/etc/jupyter/jupyter_server_config.json

WORKDIR /d2l-dcgan
# what the install reads first, so that a change to the tests or examples keeps the venv's layer
COPY Makefile setup.py README.md ./
COPY tools tools
COPY d2l_dcgan d2l_dcgan
# tools/system-libs (run by make) apt-gets the libraries libmxnet.so links on this architecture
RUN apt-get update -qq && make install && rm -rf /var/lib/apt/lists/* /root/.cache
COPY . .
# the venv was made from these same setup files; COPY may have given them a newer time
RUN touch .venv/bin/.installed-cpu

VOLUME ["/cache", "/d2l-dcgan/runs"]
EXPOSE 8888
CMD ["make", "demo"]
