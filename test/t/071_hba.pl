# 071_hba.pl -- issue 14: auth_type = hba with auth_hba_file (and auth_ident_file maps),
# PgBouncer's HBA format.  A table of connections (Unix socket / TCP from 127.0.0.1 and
# 127.0.0.2 / IPv6, database and user lists, @file, masks in both forms, reject, the
# method of each line) is asserted through psql and raw clients; reload with a changed
# file, a bad file at start and at reload (line numbers; the old rules stay).

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use IO::Socket::IP;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c071');
$node->start;
$node->write_hba('host all all 127.0.0.1/32 md5');
$node->reload;
my %pw = (scramuser => 'scram_pw', md5user => 'md5_pw', plainuser => 'plain_pw',
	trustme => 'trust_pw', rejectme => 'reject_pw', peeruser => 'peer_pw');
$node->create_user($_, $pw{$_}) for sort keys %pw;
my $me = getpwuid($<) // die "no name for uid $<";
my $su = $node->superuser;
my $have_v6 = PgSlab::Test::Cluster::_have_ipv6();
my $cport = $node->port;

my $proxy;	# created below; files live in its directory
my $hba_text = <<"EOF";
# pgslab test HBA
local   all            $su,peeruser            peer map=pm
local   all            all                     scram-sha-256
host    all            rejectme                127.0.0.1/32              reject
host    all            all                     127.0.0.2 255.255.255.255 reject
host    mydb,postgres  \@trusted.txt            127.0.0.0/8               trust
host    postgres       md5user                 127.0.0.1/32              md5
host    postgres       plainuser               127.0.0.1/32              password
host    "postgres"     all                     127.0.0.0/8               scram-sha-256
hostssl all            all                     0.0.0.0/0                 trust
host    all            all                     ::1/128                   md5
EOF

$proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p071',
	databases => {
		postgres => "host=127.0.0.1 port=$cport dbname=postgres",
		mydb     => "host=127.0.0.1 port=$cport dbname=postgres",
		nomatch  => "host=127.0.0.1 port=$cport dbname=postgres",
	},
	settings => {
		auth_type       => 'hba',
		listen_addr     => ($have_v6 ? '127.0.0.1,::1' : '127.0.0.1'),
	},
	userlist => [ map { [ $_, $pw{$_} ] } sort keys %pw ]);
my $dir = $proxy->basedir;
PgSlab::Test::Cluster::_write_file("$dir/hba.conf", $hba_text);
PgSlab::Test::Cluster::_write_file("$dir/trusted.txt", "# trusted users\ntrustme\n");
PgSlab::Test::Cluster::_write_file("$dir/ident.conf", "pm  $me  peeruser\npm  /^nobody-(.*)\$  \\1\n");
chmod 0644, "$dir/hba.conf", "$dir/trusted.txt", "$dir/ident.conf";
$proxy->set(auth_hba_file => "$dir/hba.conf", auth_ident_file => "$dir/ident.conf");
$proxy->start;
my $sock = $proxy->socket_dir;

# A raw login from <local> (source address) to <host>: (outcome, methods asked).
sub raw_from
{
	my ($local, $host, $user, $pwd, $db) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $proxy->port,
		LocalAddr => $local, Proto => 'tcp', Timeout => 5) or die "connect from $local: $!";
	binmode $s;
	my $o = password_login($s, $user, $pwd, database => $db);
	close $s;
	return $o;
}

# [name, how, db, user, password, expected ('ok' or error regex), methods (for raw)]
my @cases = (
	[ 'unix: peer, OS user mapped to peeruser (map=pm), no password', 'unix', 'postgres', 'peeruser', undef, 'ok' ],
	[ 'unix: peer, OS user not mapped to the superuser', 'unix', 'postgres', $su, 'x', qr/unix socket login rejected/ ],
	[ 'unix: line 2 scram-sha-256, right password', 'unix', 'postgres', 'scramuser', 'scram_pw', 'ok' ],
	[ 'unix: line 2 scram-sha-256, wrong password (PgBouncer\'s words for SCRAM)', 'unix', 'postgres', 'scramuser', 'nope', qr/SASL authentication failed/ ],
	[ 'tcp: rejectme 127.0.0.1/32 reject', 'tcp', 'postgres', 'rejectme', 'reject_pw', qr/login rejected/ ],
	[ 'tcp: @trusted.txt user, mydb (db list), trust: no password', 'tcp', 'mydb', 'trustme', undef, 'ok' ],
	[ 'tcp: @trusted.txt user, postgres, trust', 'tcp', 'postgres', 'trustme', undef, 'ok' ],
	[ 'tcp: md5user, md5 line', 'tcp', 'postgres', 'md5user', 'md5_pw', 'ok' ],
	[ 'tcp: md5user, md5 line, wrong password', 'tcp', 'postgres', 'md5user', 'x', qr/password authentication failed/ ],
	[ 'tcp: plainuser, password line', 'tcp', 'postgres', 'plainuser', 'plain_pw', 'ok' ],
	[ 'tcp: scramuser falls to the quoted "postgres" scram line', 'tcp', 'postgres', 'scramuser', 'scram_pw', 'ok' ],
	[ 'tcp: no line for database nomatch (hostssl never matches without TLS)', 'tcp', 'nomatch', 'scramuser', 'scram_pw', qr/no authentication method is found/ ],
	[ 'tcp: trustme to nomatch: not in the db list either', 'tcp', 'nomatch', 'trustme', undef, qr/no authentication method is found/ ],
	[ 'console (database pgbouncer) over TCP: no line names it', 'tcp', 'pgbouncer', $su, $node->superuser_password, qr/no authentication method is found/ ],
);
for my $c (@cases) {
	my ($name, $how, $db, $user, $pwd, $want) = @$c;
	my ($rc, $out, $err) = $proxy->psql($db, 'SELECT current_user', user => $user,
		password => $pwd, extra_args => ['-w'], timeout => 20,
		($how eq 'unix' ? (host => $sock) : ()));
	if ($want eq 'ok') {
		is($rc, 0, $name) or diag($err);
	} else {
		isnt($rc, 0, $name);
		like($err, $want, "... $want") or diag($err);
	}
}

ok($proxy->wait_for_log(qr/ERROR C-\d+: postgres\/\Q$su\E\@unix:\d+ ident map pm cannot be matched/),
	'the peer line\'s map that does not match is logged in PgBouncer\'s words');

# which method each line asks for (raw client sees the authentication request)
my %meth = (md5user => 5, plainuser => 3, scramuser => 10);
for my $u (sort keys %meth) {
	my $o = raw_from('127.0.0.1', '127.0.0.1', $u, $pw{$u}, 'postgres');
	ok($o->{ready}, "raw $u logs in") or diag(describe_outcome($o));
	is($o->{methods}[0], $meth{$u}, "... asked for method $meth{$u}");
}
# 127.0.0.2: the address + mask line rejects before any password
my $o = raw_from('127.0.0.2', '127.0.0.1', 'scramuser', 'scram_pw', 'postgres');
ok(!$o->{ready} && $o->{error} && $o->{error}{M} =~ /login rejected/,
	'from 127.0.0.2: the "127.0.0.2 255.255.255.255" line rejects') or diag(describe_outcome($o));
is(scalar @{ $o->{methods} }, 0, '... without asking for a password');
$o = raw_from('127.0.0.2', '127.0.0.1', 'trustme', '', 'postgres');
ok(!$o->{ready}, 'from 127.0.0.2 even a trusted user is rejected (line 4 before line 5)');
SKIP: {
	skip 'no IPv6 loopback', 3 unless $have_v6;
	my $s = IO::Socket::IP->new(PeerHost => '::1', PeerPort => $proxy->port, Timeout => 5);
	ok($s, 'IPv6 connection');
	my $v6 = $s ? password_login($s, 'scramuser', 'scram_pw', database => 'postgres') : {};
	ok($v6->{ready}, 'IPv6 ::1/128 line admits scramuser') or diag(describe_outcome($v6));
	is($v6->{methods}[0], 5, '... with md5 (that line\'s method)');
}

# --- reload with a changed file ----------------------------------------------------------
(my $t2 = $hba_text) =~ s/^host\s+all\s+rejectme\s+127\.0\.0\.1\/32\s+reject$/host all rejectme 127.0.0.1\/32 trust/m;
isnt($t2, $hba_text, 'the new file trusts rejectme');
PgSlab::Test::Cluster::_write_file("$dir/hba.conf", $t2);
$proxy->reload;
ok($proxy->wait_for_log(qr/configuration reloaded/), 'reloaded');
my ($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', user => 'rejectme', password => undef,
	extra_args => ['-w'], timeout => 20);
is($rc, 0, 'after RELOAD rejectme is trusted (new rules in force)') or diag($err);

# --- a bad file on reload: error with file and line; the running rules stay ---------------
(my $bad = $t2) =~ s/^host\s+postgres\s+md5user.*$/host postgres md5user 127.0.0.1\/33 md5/m;
PgSlab::Test::Cluster::_write_file("$dir/hba.conf", $bad);
$proxy->reload;
ok($proxy->wait_for_log(qr/reload failed, the running configuration stays in force: \Q$dir\E\/hba\.conf:7: invalid CIDR mask length "33"/),
	'bad reload: logged with file, line and reason, and that the running configuration stays');
($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', user => 'rejectme', password => undef,
	extra_args => ['-w'], timeout => 20);
is($rc, 0, '... and the previous rules still apply (rejectme trusted)') or diag($err);
($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', user => 'md5user', password => 'md5_pw', timeout => 20);
is($rc, 0, '... md5user still logs in by the old line 7') or diag($err);

# --- @file and ident file changes are re-read on reload too --------------------------------
PgSlab::Test::Cluster::_write_file("$dir/hba.conf", $t2);
PgSlab::Test::Cluster::_write_file("$dir/trusted.txt", "md5user\n");
$proxy->reload;
ok(PgSlab::Test::Cluster::_poll_until(10, sub {
	my ($r) = $proxy->psql('mydb', 'SELECT 1', user => 'md5user', password => undef,
		extra_args => ['-w'], timeout => 20);
	$r == 0;
}), 'a changed @file is re-read on reload (md5user trusted on mydb)');
($rc, $out, $err) = $proxy->psql('mydb', 'SELECT 1', user => 'trustme', password => undef,
	extra_args => ['-w'], timeout => 20);
isnt($rc, 0, '... and trustme no longer is');

is($proxy->safe_psql('postgres', 'SELECT 71', user => 'scramuser', password => 'scram_pw'), '71',
	'pgslab still serves');
is($proxy->stop, 0, 'clean exit');

# --- bad files at start: clear errors, no start --------------------------------------------
my @bad = (
	[ "host all +admins 10.0.0.0/8 md5\n", qr/hba\.conf:1: group membership \(\+admins\) is not supported/ ],
	[ "local all all peer map=nomap\n", qr/hba\.conf:1: ident map "nomap" is not in the auth_ident_file/ ],
	[ "local all all ldap\n", qr/hba\.conf:1: method "ldap" is not supported/ ],
);
my $i = 0;
for my $b (@bad) {
	my ($text, $re) = @$b;
	$i++;
	my $p2 = PgSlab::Test::Proxy->new(cluster => $node, name => "p071b$i",
		settings => { auth_type => 'hba' });
	my $d2 = $p2->basedir;
	PgSlab::Test::Cluster::_write_file("$d2/hba.conf", $text);
	PgSlab::Test::Cluster::_write_file("$d2/ident.conf", "pm a b\n");
	$p2->set(auth_hba_file => "$d2/hba.conf", auth_ident_file => "$d2/ident.conf");
	my $ok = eval { $p2->start; 1 };
	ok(!$ok, "bad file $i: pgslab refuses to start");
	like($p2->log_content, $re, "... and says where: $re");
	$p2->teardown;
}
# --- an address with bits outside its mask: as PgBouncer, the file loads with a warning and
# the line never matches (PostgreSQL would mask it: a trust line would admit all of 127/8)
{
	my $pm = PgSlab::Test::Proxy->new(cluster => $node, name => 'p071mask',
		settings => { auth_type => 'hba' }, userlist => [ [ 'scramuser', 'scram_pw' ] ]);
	my $dm = $pm->basedir;
	PgSlab::Test::Cluster::_write_file("$dm/hba.conf",
		"host all all 127.0.0.1/8 trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
	$pm->set(auth_hba_file => "$dm/hba.conf");
	ok(eval { $pm->start; 1 }, 'bits outside the mask (127.0.0.1/8): pgslab starts') or diag($@);
	like($pm->log_content, qr/WARNING address does not match mask in \Q$dm\E\/hba\.conf line #1: 127\.0\.0\.1 \/ 255\.0\.0\.0/,
		'... with PgBouncer\'s warning');
	($rc, $out, $err) = $pm->psql('postgres', 'SELECT 1', user => 'scramuser', password => undef,
		extra_args => ['-w'], timeout => 20);
	isnt($rc, 0, '... and that trust line never matches: no password, refused');
	is($pm->safe_psql('postgres', 'SELECT 1', user => 'scramuser', password => 'scram_pw'), '1',
		'... the next line (scram-sha-256) decides');
	$pm->stop;
}
my $p3 = PgSlab::Test::Proxy->new(cluster => $node, name => 'p071c', settings => { auth_type => 'hba' });
ok(!eval { $p3->start; 1 }, 'auth_type = hba without auth_hba_file: refuses to start');
like($p3->log_content, qr/auth_type = hba needs auth_hba_file/, '... saying so');
$p3->teardown;
for my $t ([ 'cert', qr/auth_type = cert needs client TLS with client certificates/ ],
	[ 'pam', qr/auth_type = pam is not supported by pgslab/ ],
	[ 'ldap', qr/auth_type = ldap is not supported by pgslab/ ]) {
	my $p4 = PgSlab::Test::Proxy->new(cluster => $node, name => "p071$t->[0]",
		settings => { auth_type => $t->[0] });
	ok(!eval { $p4->start; 1 }, "auth_type = $t->[0]: refuses to start");
	like($p4->log_content, $t->[1], '... with a clear message');
	$p4->teardown;
}
# --- auth_type = peer (pgslab's own value): the Unix socket peer's OS user is the user name ---
$node->create_user($me, 'me_pw') unless $me eq $su;
my $pp = PgSlab::Test::Proxy->new(cluster => $node, name => 'p071peer',
	settings => { auth_type => 'peer' },
	userlist => [ [ $me, 'me_pw' ], [ 'peeruser', 'peer_pw' ] ]);
$pp->start;
($rc, $out, $err) = $pp->psql('postgres', 'SELECT current_user', user => $me, password => undef,
	extra_args => ['-w'], host => $pp->socket_dir, timeout => 20);
is($rc, 0, "auth_type = peer: OS user $me logs in as $me over the Unix socket, no password") or diag($err);
($rc, $out, $err) = $pp->psql('postgres', 'SELECT 1', user => 'peeruser', password => 'peer_pw',
	extra_args => ['-w'], host => $pp->socket_dir, timeout => 20);
isnt($rc, 0, 'auth_type = peer: another user name is refused');
like($err, qr/unix socket login rejected/, '... "unix socket login rejected"') or diag($err);
($rc, $out, $err) = $pp->psql('postgres', 'SELECT 1', user => $me, password => 'me_pw',
	extra_args => ['-w'], timeout => 20);
isnt($rc, 0, 'auth_type = peer: TCP is refused, even with the right password');
$pp->stop;
done_testing();
