"""What the TLS tests share: a private CA and a server certificate for 127.0.0.1 signed
by it (made with openssl in a fresh temporary directory; trusted through SSL_CERT_FILE),
and free loopback ports."""
import os
import socket
import subprocess
import tempfile


def free_port():
    """A port free on 127.0.0.1 for TCP and UDP (a media worker binds both)."""
    while True:
        with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def private_ca():
    """Returns (directory, ca.pem, cert.pem, key.pem)."""
    t = tempfile.mkdtemp(prefix="sb-tls-")
    ca, ca_key = os.path.join(t, "ca.pem"), os.path.join(t, "ca-key.pem")
    cert, key, csr = os.path.join(t, "cert.pem"), os.path.join(t, "key.pem"), os.path.join(t, "cert.csr")
    ext = os.path.join(t, "ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for cmd in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Switchboard test CA",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", ext, "-out", cert],
    ):
        subprocess.run(["openssl", *cmd], check=True, capture_output=True)
    return t, ca, cert, key
