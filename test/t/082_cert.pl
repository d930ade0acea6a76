# 082_cert.pl -- certificate authentication: auth_type = cert and the HBA method cert (with
# map= through the auth_ident_file), through psql and DBD::Pg with client certificates
# (sslcert/sslkey): the CN logs in as itself, anything else is refused with PgBouncer's
# "certificate authentication failed" and the log says why, with the client-chosen CN
# escaped; the console goes through the same rules; configurations under which nobody
# could log in refuse to load.

use strict;
use warnings;

use File::Path qw(remove_tree);
use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::TLS qw(make_certs server_cert);

my $certdir = PgSlab::Test::Cluster::make_temp_dir('pgslab_cert_certs');
END { remove_tree($certdir) if $certdir && !$ENV{PGSLAB_KEEP_TMP} }
my $c = make_certs($certdir);                  # client.crt: CN=app, signed by ca
my $node = PgSlab::Test::Cluster->new(name => 'c082');
$node->start;
my $su = $node->superuser;
my %pw = (app => 'app_pw', certuser => 'certuser_pw', mapped => 'mapped_pw');
$node->create_user($_, $pw{$_}) for sort keys %pw;
my $cport = $node->port;

# Client certificates: name => CN (all signed by the test CA but "stranger").
my %cn = (
	certuser => 'certuser',
	mapped   => 'mapped@example.com',
	console  => $su,
	odd      => "evil\nLOG:  forged line \"x\"\x7f",
);
my %cert = (app => { sslcert => $c->{client_crt}, sslkey => $c->{client_key} });
for my $n (sort keys %cn) {
	my ($crt, $key) = server_cert($certdir, $n, $cn{$n}, undef, 'ca');
	$cert{$n} = { sslcert => $crt, sslkey => $key };
}
{
	my ($crt, $key) = server_cert($certdir, 'stranger', 'app', undef, 'other_ca');
	$cert{stranger} = { sslcert => $crt, sslkey => $key };
}

my %client_tls = (
	client_tls_sslmode   => 'require',
	client_tls_key_file  => $c->{server_key},
	client_tls_cert_file => $c->{server_crt},
	client_tls_ca_file   => $c->{ca},
);

# psql as <user> with the certificate <cert> (undef: none) and sslmode <mode>;
# never prompts for a password.  Returns (rc, out, err).
sub cert_psql
{
	my ($proxy, $db, $user, $cert, $mode, %o) = @_;
	my %params = (sslmode => $mode // 'require', $cert ? %{ $cert{$cert} } : ());
	return $proxy->psql($db, $o{sql} // 'SELECT current_user', user => $user, password => undef,
		params => \%params, extra_args => ['-w'], timeout => 20, %o);
}

# --- configurations under which no client could log in refuse to load ------------------------
for my $t ([ 'no client TLS', {} ],
	[ 'client_tls_sslmode = require without client_tls_ca_file',
		{ %client_tls, client_tls_ca_file => undef } ],
	[ 'client_tls_ca_file with client_tls_sslmode = disable',
		{ %client_tls, client_tls_sslmode => 'disable' } ]) {
	my ($what, $tls) = @$t;
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => 'p082bad',
		settings => { auth_type => 'cert', %$tls });
	ok(!eval { $p->start; 1 }, "auth_type = cert, $what: refuses to start");
	like($p->log_content,
		qr/auth_type = cert needs client TLS with client certificates: client_tls_sslmode other than disable and client_tls_ca_file/,
		'... saying what it needs');
	$p->teardown;
}

# --- auth_type = cert ------------------------------------------------------------------------
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p082',
	settings => { auth_type => 'cert', %client_tls, log_connections => 1 },
	userlist => [ map { [ $_, $pw{$_} ] } sort keys %pw ]);
$proxy->start;

my ($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'app');
ok($rc == 0 && $out =~ /^app$/m, 'CN=app logs in as app (no password asked)') or diag($err);
($rc, $out, $err) = cert_psql($proxy, 'postgres', 'certuser', 'certuser', 'verify-full',
	params => { sslmode => 'verify-full', sslrootcert => $c->{ca}, %{ $cert{certuser} } });
ok($rc == 0 && $out =~ /^certuser$/m, 'CN=certuser logs in as certuser (sslmode=verify-full)')
    or diag($err);

($rc, $out, $err) = cert_psql($proxy, 'postgres', 'certuser', 'app');
isnt($rc, 0, 'CN=app asking for user certuser: refused');
like($err, qr/certificate authentication failed/, '... "certificate authentication failed"');
ok($proxy->wait_for_log(qr/TLS certificate name mismatch: CN "app", user "certuser"/),
	'... and the log names the mismatch');

($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', undef);
isnt($rc, 0, 'TLS without a client certificate: refused');
like($err, qr/certificate authentication failed/, '... "certificate authentication failed"');
ok($proxy->wait_for_log(qr/TLS client certificate required/), '... log: certificate required');

($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'stranger');
isnt($rc, 0, 'a certificate (CN=app) signed by another CA: refused');
like($err, qr/unknown ca|certificate verify failed/i, '... in the handshake (unknown CA)')
    or diag($err);

($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'app', 'disable');
isnt($rc, 0, 'plain TCP (client_tls_sslmode = require): refused');
like($err, qr/SSL required/, '... "SSL required"');

($rc, $out, $err) = cert_psql($proxy, 'postgres', 'nosuchuser', undef, 'require',
	params => { sslmode => 'require', %{ $cert{app} } });
isnt($rc, 0, 'a user not in the auth_file: refused');
like($err, qr/certificate authentication failed/, '... with the same words');

# A client-chosen CN with a newline, quotes and DEL is logged escaped: one line, no forgery.
($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'odd');
isnt($rc, 0, 'CN with a newline asking for user app: refused');
ok($proxy->wait_for_log(qr/TLS certificate name mismatch: CN "evil\\x0aLOG:  forged line "x"\\x7f", user "app"/),
	'... the CN is logged escaped (\\x0a, \\x7f)') or diag($proxy->log_content);
unlike($proxy->log_content, qr/^LOG:  forged line/m, '... no forged log line');

# Through DBD::Pg too.
{
	my $dbh = eval { $proxy->connect_dbi('postgres', user => 'app', password => undef,
		params => { sslmode => 'require', %{ $cert{app} } }) };
	ok($dbh && $dbh->selectrow_array('SELECT current_user') eq 'app', 'DBD::Pg: CN=app logs in')
	    or diag($@);
	$dbh->disconnect if $dbh;
	$dbh = eval { $proxy->connect_dbi('postgres', user => 'certuser', password => 'certuser_pw',
		params => { sslmode => 'require', %{ $cert{app} } }) };
	ok(!$dbh && $@ =~ /certificate authentication failed/,
		'DBD::Pg: CN=app as certuser refused, a password does not help');
}

# The console: admin_users by certificate, as any other login.
($rc, $out, $err) = cert_psql($proxy, 'pgslab', $su, 'console', 'require', sql => 'SHOW VERSION');
ok($rc == 0 && $out =~ /pgslab|PgBouncer/i, "console: CN=$su logs in to the console")
    or diag($err);
($rc, $out, $err) = cert_psql($proxy, 'pgslab', $su, 'app', 'require', sql => 'SHOW VERSION');
isnt($rc, 0, "console: CN=app asking for $su: refused");
like($err, qr/certificate authentication failed/, '... "certificate authentication failed"');
($rc, $out, $err) = cert_psql($proxy, 'pgslab', 'app', 'app', 'require', sql => 'SHOW VERSION');
isnt($rc, 0, 'console: CN=app as app (not in admin_users): refused');
like($err, qr/not allowed to connect to the admin console/, '... by admin_users');

# Below verify-ca a certificate is optional at the TLS level; plain TCP then reaches cert auth.
$proxy->set(client_tls_sslmode => 'prefer');
$proxy->reload;
ok(PgSlab::Test::Cluster::_poll_until(10, sub {
	my ($r, $o, $e) = cert_psql($proxy, 'postgres', 'app', 'app', 'disable');
	$e =~ /certificate authentication failed/;
}), 'client_tls_sslmode = prefer: plain TCP is refused by cert auth');
ok($proxy->wait_for_log(qr/TLS connection required/), '... log: "TLS connection required"');
($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'app', 'require',
	host => $proxy->socket_dir);
isnt($rc, 0, 'the Unix socket (no TLS there): refused');
($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'app', 'prefer');
ok($rc == 0 && $out =~ /^app$/m, 'sslmode=prefer with CN=app: logs in over TLS') or diag($err);

# A RELOAD into a configuration nobody could log in with is refused; the old one stays.
$proxy->set(client_tls_ca_file => undef);
$proxy->reload;
ok($proxy->wait_for_log(qr/auth_type = cert needs client TLS/), 'RELOAD without client_tls_ca_file refused');
($rc, $out, $err) = cert_psql($proxy, 'postgres', 'app', 'app');
ok($rc == 0 && $out =~ /^app$/m, '... and CN=app still logs in') or diag($err);
is($proxy->stop, 0, 'pgslab (auth_type = cert) exits cleanly');

# --- auth_type = hba with cert lines: map= through the auth_ident_file ---------------------------
my $hp = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p082hba',
	settings => { auth_type => 'hba', %client_tls, client_tls_sslmode => 'prefer' },
	userlist => [ map { [ $_, $pw{$_} ] } sort keys %pw ]);
my $hd = $hp->basedir;
PgSlab::Test::Cluster::_write_file("$hd/hba.conf", <<"EOF");
local   all       all                        scram-sha-256
hostssl all       mapped,app   127.0.0.1/32  cert map=m
host    all       certuser     127.0.0.1/32  cert
host    pgslab    $su          127.0.0.1/32  cert
EOF
PgSlab::Test::Cluster::_write_file("$hd/ident.conf", "m  /^(.*)\@example\\.com\$  \\1\n");
chmod 0644, "$hd/hba.conf", "$hd/ident.conf";
$hp->set(auth_hba_file => "$hd/hba.conf", auth_ident_file => "$hd/ident.conf", verbose => 2);
$hp->start;

($rc, $out, $err) = cert_psql($hp, 'postgres', 'mapped', 'mapped');
ok($rc == 0 && $out =~ /^mapped$/m, 'hostssl cert map=m: CN=mapped@example.com logs in as mapped')
    or diag($err);
ok($hp->wait_for_log(qr/ident map m: CN "mapped\@example\.com" logs in as "mapped"/),
	'... (verbose log names the map)');
($rc, $out, $err) = cert_psql($hp, 'postgres', 'app', 'mapped');
isnt($rc, 0, 'CN=mapped@example.com asking for app: refused (the map says mapped)');
like($err, qr/certificate authentication failed/, '... "certificate authentication failed"');
($rc, $out, $err) = cert_psql($hp, 'postgres', 'app', 'app');
isnt($rc, 0, 'CN=app asking for app under map=m: refused (no map line for it)');
ok($hp->wait_for_log(qr/ident map: m does not have a match \(CN "app", user "app"\)/),
	'... log: the map has no match');
($rc, $out, $err) = cert_psql($hp, 'postgres', 'mapped', 'mapped', 'disable');
isnt($rc, 0, 'plain TCP matches no hostssl line: refused');

($rc, $out, $err) = cert_psql($hp, 'postgres', 'certuser', 'certuser');
ok($rc == 0 && $out =~ /^certuser$/m, 'host ... cert over TLS: CN=certuser logs in') or diag($err);
($rc, $out, $err) = cert_psql($hp, 'postgres', 'certuser', 'certuser', 'disable');
isnt($rc, 0, 'host ... cert over plain TCP: refused');
like($err, qr/certificate authentication failed/, '... "certificate authentication failed"');
ok($hp->wait_for_log(qr/TLS connection required/), '... log: "TLS connection required"');

($rc, $out, $err) = cert_psql($hp, 'pgslab', $su, 'console', 'require', sql => 'SHOW VERSION');
ok($rc == 0, "console through an HBA cert line: CN=$su logs in") or diag($err);
($rc, $out, $err) = cert_psql($hp, 'pgslab', $su, undef, 'require', sql => 'SHOW VERSION');
isnt($rc, 0, '... and without a certificate is refused');
is($hp->stop, 0, 'pgslab (auth_type = hba) exits cleanly');

unlike($proxy->log_content . $hp->log_content, qr/AddressSanitizer|runtime error:/,
	'no sanitizer report');
done_testing();
