# 011_auth.pl -- client authentication (trust, plain, md5, scram-sha-256) and login to the server behind.

use strict;
use warnings;

use utf8;
use Test::More;
use Encode qw(encode_utf8);
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c011',
	hba => [ 'host all u_md5 127.0.0.1/32 md5' ]);
$node->start;
my $weird = 'u_wé "ird';
my $weird_pw = encode_utf8("pä'ss \"wörd");
$node->create_user('u_scram', 'scram_pw');
$node->create_user('u_plain', 'plain_pw');
$node->create_user('u_md5', 'md5_pw', method => 'md5');
$node->create_user(encode_utf8($weird), $weird_pw);
$node->create_user('u_late', 'late_pw');

my $scram_v = $node->user_secret('u_scram');
my $md5_v = $node->user_secret('u_md5');
is($md5_v, 'md5' . md5_hex('md5_pwu_md5'), 'u_md5 has an md5 verifier on the server');
like($scram_v, qr/^SCRAM-SHA-256\$/, 'u_scram has a SCRAM verifier on the server');

my @userlist = (
	[ 'u_scram', $scram_v ],
	[ 'u_plain', 'plain_pw' ],
	[ 'u_md5', $md5_v ],
	[ encode_utf8($weird), $node->user_secret(encode_utf8($weird)) ],
);

sub login_ok
{
	my ($proxy, $user, $pw, $name, %o) = @_;
	my $dbh = eval { $proxy->connect_dbi('postgres', user => $user, password => $pw, %o) };
	my $who = $dbh ? eval { $dbh->selectrow_array('SELECT current_user') } : undef;
	$who = encode_utf8($who) if defined $who && utf8::is_utf8($who);	# DBD::Pg decodes UTF-8
	is($who, $user, $name) or diag($DBI::errstr // $@);
	$dbh->disconnect if $dbh;
}

sub login_fails
{
	my ($proxy, $user, $pw, $name, $re) = @_;
	my $dbh = eval { $proxy->connect_dbi('postgres', user => $user, password => $pw) };
	ok(!$dbh, $name);
	like($DBI::errstr // '', $re // qr/(?:password|SASL) authentication failed/, '... with the auth error')
	    if !$dbh;
	$dbh->disconnect if $dbh;
}

sub new_proxy
{
	my ($auth, @list) = @_;
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => "p011_$auth",
		settings => { auth_type => $auth, pool_mode => 'transaction' },
		userlist => \@list);
	$p->start;
	return $p;
}

# --- scram-sha-256 ---------------------------------------------------------------------------------------
{
	my $p = new_proxy('scram-sha-256', @userlist);
	login_ok($p, 'u_scram', 'scram_pw', 'scram: SCRAM verifier in auth_file, pass-through to the server');
	login_fails($p, 'u_scram', 'wrong', 'scram: wrong password refused');
	login_ok($p, 'u_plain', 'plain_pw', 'scram: plain-text secret in auth_file');
	login_fails($p, 'u_plain', 'wrong', 'scram: wrong password for a plain-text secret refused');
	login_ok($p, encode_utf8($weird), $weird_pw,
		'scram: user name with space/quote/UTF-8, password with quotes and UTF-8');
	login_fails($p, 'nobody', 'x', 'scram: user not in auth_file refused');
	is($p->safe_psql('postgres', 'SELECT current_user', user => 'u_scram',
		password => 'scram_pw', host => $p->socket_dir), 'u_scram',
		'scram: login over the Unix socket');
	my ($rc, $out, $err) = $p->psql('postgres', 'SELECT 1', user => 'u_scram',
		password => 'scram_pw', params => { channel_binding => 'require' });
	isnt($rc, 0, 'scram: channel_binding=require cannot be met without TLS');
	my @r = $p->admin('SHOW VERSION');
	is(scalar @r, 1, 'scram: admin console login as an admin user (SCRAM verifier)');

	# pgbench: many SCRAM logins (-C) in a row.
	($rc, $out, $err) = $p->pgbench('-n', '-C', '-c', '2', '-t', '25', '-f', '-',
		{ stdin => "SELECT 1;\n", env => { PGUSER => 'u_scram', PGPASSWORD => 'scram_pw' } });
	is($rc, 0, 'scram: pgbench -C (50 SCRAM logins)') or diag($err);
	like($out, qr/number of failed transactions: 0 /, '... zero failed');

	# auth_file reload: a new user appears, then is removed.
	login_fails($p, 'u_late', 'late_pw', 'scram: user not yet in auth_file refused');
	$p->set_userlist([ @userlist, [ 'u_late', $node->user_secret('u_late') ] ]);
	$p->reload;
	my $ok;
	for (1 .. 50) {
		last if $ok = eval { $p->connect_dbi('postgres', user => 'u_late', password => 'late_pw') };
		sleep(0.1);
	}
	ok($ok, 'scram: after SIGHUP, a user added to auth_file can log in');
	$ok->disconnect if $ok;
	$p->set_userlist(\@userlist);
	$p->reload;
	my $gone;
	for (1 .. 50) {
		$gone = !eval { $p->connect_dbi('postgres', user => 'u_late', password => 'late_pw') };
		last if $gone;
		sleep(0.1);
	}
	ok($gone, 'scram: after SIGHUP, a user removed from auth_file is refused');
	is($p->stop, 0, 'scram proxy exits cleanly');
}

# --- md5 -------------------------------------------------------------------------------------------------
{
	my $p = new_proxy('md5', @userlist);
	login_ok($p, 'u_md5', 'md5_pw', 'md5: md5 verifier in auth_file, md5 login to the server');
	login_fails($p, 'u_md5', 'wrong', 'md5: wrong password refused');
	login_ok($p, 'u_plain', 'plain_pw', 'md5: plain-text secret in auth_file');
	login_fails($p, 'u_plain', 'wrong', 'md5: wrong password for a plain-text secret refused');
	login_ok($p, 'u_scram', 'scram_pw', 'md5: a SCRAM secret makes pgslab ask for SCRAM instead');
	login_fails($p, 'u_scram', 'wrong', 'md5: ... and a wrong password is refused');
	is($p->stop, 0, 'md5 proxy exits cleanly');
}

# --- plain -------------------------------------------------------------------------------------------------
{
	my $p = new_proxy('plain', @userlist);
	login_ok($p, 'u_plain', 'plain_pw', 'plain: clear-text password against a plain-text secret');
	login_fails($p, 'u_plain', 'wrong', 'plain: wrong password refused');
	login_ok($p, 'u_md5', 'md5_pw', 'plain: clear-text password against an md5 secret');
	login_fails($p, 'u_md5', 'wrong', 'plain: wrong password against an md5 secret refused');
	# (A right clear-text password against a SCRAM secret cannot log in to
	# the server: no SCRAM keys.  PgBouncer refuses it too; not asserted.)
	login_fails($p, 'u_scram', 'wrong', 'plain: wrong password against a SCRAM secret refused');
	is($p->stop, 0, 'plain proxy exits cleanly');
}

# --- trust -------------------------------------------------------------------------------------------------
{
	my $p = new_proxy('trust', @userlist);
	login_ok($p, 'u_plain', undef, 'trust: no password asked; pgslab logs in with the auth_file password');
	login_ok($p, 'u_plain', 'anything', 'trust: any password is ignored');
	login_ok($p, 'u_md5', undef, 'trust: md5 secret used for the server login');
	my $dbh = eval { $p->connect_dbi('postgres', user => 'nobody', password => undef) };
	ok(!$dbh, 'trust: a user missing from auth_file is still refused');
	is($p->stop, 0, 'trust proxy exits cleanly');
}

done_testing();
