"""`doctor`, who can get in: sshd and the firewall."""



from management.host.doctor import access as doctor
from management.host.doctor.check import FAIL, OK, WARN
from tests.unit.host.doctor.test_check import (
    SSHD_T,
    absent,
    answer,
    failed,
)
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)


def test_sshd_as_designed_from_sshd_t(host):
    checks = [doctor.check_ssh_port(host), doctor.check_ssh_root(host), doctor.check_ssh_password(host)]
    assert [c.status for c in checks] == [OK, OK, OK]
    assert "port 2222 (sshd -T)" in checks[0].detail


def test_debian_default_sshd(host):
    answer(host, ("sshd", "-T"), "port 22\npermitrootlogin without-password\npasswordauthentication yes\n"
                                 "kbdinteractiveauthentication no\npubkeyauthentication yes\n")
    port, root, password = doctor.check_ssh_port(host), doctor.check_ssh_root(host), doctor.check_ssh_password(host)
    assert (port.status, root.status, password.status) == (WARN, WARN, FAIL)
    assert "above 1024" in port.detail and "Port 2222" in port.fix
    assert "without-password" in root.detail and "PermitRootLogin no" in root.fix
    assert "PasswordAuthentication yes" in password.detail and "PasswordAuthentication no" in password.fix


def test_root_login_yes_fails_and_keyboard_interactive_warns(host):
    answer(host, ("sshd", "-T"), SSHD_T.replace("permitrootlogin no", "permitrootlogin yes")
           .replace("kbdinteractiveauthentication no", "kbdinteractiveauthentication yes"))
    assert doctor.check_ssh_root(host).status == FAIL
    c = doctor.check_ssh_password(host)
    assert c.status == WARN and "KbdInteractiveAuthentication yes" in c.detail


def test_without_sshd_t_the_config_file_is_read_with_includes_and_defaults(host):
    answer(host, ("sshd", "-T"), failed("sshd: no hostkeys available -- exiting."))
    conf = host.sshd_config
    (conf.parent / "sshd_config.d").mkdir()
    (conf.parent / "sshd_config.d" / "10-hard.conf").write_text("PasswordAuthentication no\nPort 2200\n")
    conf.write_text("Include sshd_config.d/*.conf\nPort 22\nPasswordAuthentication yes\n"
                    "KbdInteractiveAuthentication no\nMatch User backup\n  PermitRootLogin yes\n")
    port, root, password = doctor.check_ssh_port(host), doctor.check_ssh_root(host), doctor.check_ssh_password(host)
    assert port.status == WARN and "port 2200, 22" in port.detail and str(conf) in port.detail
    assert root.status == WARN and "prohibit-password" in root.detail  # the default; Match is not applied
    assert password.status == OK  # the included file comes first, and the first value wins


def test_no_sshd_at_all_is_a_warn_naming_it(host):
    answer(host, ("sshd", "-T"), absent("sshd"))
    host.sshd_config.unlink()
    c = doctor.check_ssh_port(host)
    assert c.status == WARN and "sshd is not installed" in c.detail


def test_ufw_inactive_or_allowing_fails_with_the_spec_commands(host):
    answer(host, ("ufw", "status", "verbose"), "Status: inactive\n")
    c = doctor.check_firewall(host)
    assert c.status == FAIL and "ufw is inactive" in c.detail
    assert "ufw default deny incoming" in c.fix and "ufw allow 2222/tcp" in c.fix
    answer(host, ("ufw", "status", "verbose"), "Status: active\nDefault: allow (incoming), allow (outgoing)\n")
    assert doctor.check_firewall(host).status == FAIL


def test_without_ufw_the_nft_ruleset_decides(host):
    answer(host, ("ufw", "status", "verbose"), absent("ufw"))
    answer(host, ("nft", "list", "ruleset"),
           "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
           "\t\tct state established,related accept\n\t\ttcp dport 2222 accept\n\t}\n}\n")
    c = doctor.check_firewall(host)
    assert c.status == OK and "no ufw; nft: incoming dropped" in c.detail
    answer(host, ("nft", "list", "ruleset"),
           "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n"
           "\tchain DOCKER {\n\t}\n}\n")
    assert doctor.check_firewall(host).status == FAIL


def test_without_ufw_and_nft_iptables_decides_and_with_none_it_cannot_tell(host):
    answer(host, ("ufw", "status", "verbose"), absent("ufw"))
    answer(host, ("iptables", "-S", "INPUT"), "-P INPUT ACCEPT\n")
    c = doctor.check_firewall(host)
    assert c.status == FAIL and "no ufw; no nft; iptables: incoming accepted" in c.detail
    answer(host, ("iptables", "-S", "INPUT"), "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 2222 -j ACCEPT\n"
                                              "-A INPUT -j DROP\n")
    assert doctor.check_firewall(host).status == OK
    answer(host, ("iptables", "-S", "INPUT"), absent("iptables"))
    c = doctor.check_firewall(host)
    assert c.status == WARN and "neither ufw nor nft nor iptables" in c.detail
