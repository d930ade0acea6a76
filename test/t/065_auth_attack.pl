# 065_auth_attack.pl -- issue 10 (#1, #13): an attacker's view of client authentication.  For
# each kind of stored secret (plain text, md5, SCRAM verifier) and each auth_type (plain, md5,
# scram-sha-256): the empty, a wrong and the correct password, before and after a RELOAD that
# changes every password (and removes one user); forced-user databases; unknown users.  The
# correct password logs in (except with an md5 secret under scram-sha-256, as PgBouncer);
# everything else fails with 28P01 and one message shape.
#
# Client authentication is checked on the admin console (every test user is in admin_users),
# so that no server login is involved; the forced-user cases go through a real database.

use strict;
use warnings;

use Test::More;
use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(hmac_sha256 sha256);
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire qw(:DEFAULT pbkdf2_sha256);

my $node = PgSlab::Test::Cluster->new(name => 'c065');
$node->start;
$node->create_user('app', 'app_pw');
$node->create_user('k_force', 'force_pw', superuser => 1);
my $cport = $node->port;

sub scram_verifier
{
	my ($pw, $salt) = @_;
	my $salted = pbkdf2_sha256($pw, $salt, 4096);
	my $ck = hmac_sha256('Client Key', $salted);
	my $sk = hmac_sha256('Server Key', $salted);
	return 'SCRAM-SHA-256$4096:' . encode_base64($salt, '') . '$'
	    . encode_base64(sha256($ck), '') . ':' . encode_base64($sk, '');
}

sub secret_of
{
	my ($kind, $user, $pw) = @_;
	return $pw if $kind eq 'plain';
	return 'md5' . md5_hex($pw . $user) if $kind eq 'md5';
	return scram_verifier($pw, "salt_$user" . length $pw);
}

my @kinds = ('plain', 'md5', 'scram');
# generation 1 and 2 passwords
sub pw_of { my ($kind, $gen) = @_; return "pw_${kind}_g$gen" }

sub userlist_for
{
	my ($gen) = @_;
	my @l = map { [ "k_$_", secret_of($_, "k_$_", pw_of($_, $gen)) ] } @kinds;
	push @l, [ 'app', 'app_pw' ];
	push @l, [ 'k_rm', 'rm_pw' ] if $gen == 1;
	return \@l;
}

sub attempt
{
	my ($proxy, $user, $pw, $db) = @_;
	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = password_login($s, $user, $pw, database => $db);
	close $s;
	return $o;
}

my %shapes;	# exchange => message with the user name replaced => [cases]
my $bad_code = 0;

sub must_fail
{
	my ($o, $user, $name) = @_;
	my $ok = !$o->{ready} && $o->{error} && $o->{error}{C} eq '28P01';
	ok($ok, "$name: refused with 28P01") or diag('got ' . describe_outcome($o));
	if ($o->{error}) {
		(my $m = $o->{error}{M} // '') =~ s/\Q$user\E/<USER>/g;
		# the words depend only on the exchange the server asked for
		# (as PgBouncer: "SASL authentication failed" after SCRAM), which
		# the client sees anyway; never on whether the user exists
		$m = '<AUTH FAILED>' if $m eq 'SASL authentication failed' ||
			$m eq 'password authentication failed for user "<USER>"';
		push @{ $shapes{$m} }, $name;
	}
}

sub must_succeed
{
	my ($o, $name) = @_;
	ok($o->{ready}, "$name: logs in") or diag('got ' . describe_outcome($o));
}

for my $auth ('plain', 'md5', 'scram-sha-256') {
	my $admins = join(',', $node->superuser, map({ "k_$_" } @kinds), 'k_rm');
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => "p065_$auth",
		databases => {
			postgres => "host=127.0.0.1 port=$cport dbname=postgres",
			fdb      => "host=127.0.0.1 port=$cport dbname=postgres user=k_force password=force_pw",
		},
		settings => { auth_type => $auth, pool_mode => 'transaction', admin_users => $admins },
		userlist => userlist_for(1));
	$proxy->start;

	for my $gen (1, 2) {
		my $tag = "$auth, " . ($gen == 1 ? 'before reload' : 'after reload');
		for my $kind (@kinds) {
			my $u = "k_$kind";
			if ($auth eq 'scram-sha-256' && $kind eq 'md5') {
				# as PgBouncer: an md5 secret cannot check a SCRAM proof,
				# and SCRAM does not fall back to md5
				must_fail(attempt($proxy, $u, pw_of($kind, $gen), 'pgslab'), $u,
					"#1 $tag, $kind secret, correct password (no SCRAM with an md5 secret)");
			} else {
				must_succeed(attempt($proxy, $u, pw_of($kind, $gen), 'pgslab'),
					"#1 $tag, $kind secret, correct password");
			}
			must_fail(attempt($proxy, $u, '', 'pgslab'), $u,
				"#1 $tag, $kind secret, empty password");
			must_fail(attempt($proxy, $u, 'wrong', 'pgslab'), $u,
				"#1 $tag, $kind secret, wrong password");
			must_fail(attempt($proxy, $u, pw_of($kind, 1), 'pgslab'), $u,
				"#1 $tag, $kind secret, the previous password") if $gen == 2;
		}
		if ($gen == 1) {
			must_succeed(attempt($proxy, 'k_rm', 'rm_pw', 'pgslab'), "#1 $tag, k_rm, correct password");
		} else {
			must_fail(attempt($proxy, 'k_rm', 'rm_pw', 'pgslab'), 'k_rm',
				"#1 $tag, user removed by the reload, its old password");
			must_fail(attempt($proxy, 'k_rm', '', 'pgslab'), 'k_rm',
				"#1 $tag, user removed by the reload, empty password");
		}
		# (to a normal database: the console refuses non-admin names before authentication)
		must_fail(attempt($proxy, 'nobody', '', 'postgres'), 'nobody', "#13 $tag, unknown user, empty password");
		must_fail(attempt($proxy, 'nobody', 'wrong', 'postgres'), 'nobody', "#13 $tag, unknown user, wrong password");

		# Forced user: after a legitimate login to fdb, k_force (not in auth_file) stays out.
		must_succeed(attempt($proxy, 'app', 'app_pw', 'fdb'), "#1 $tag, app logs in to the forced-user database");
		must_fail(attempt($proxy, 'k_force', '', 'fdb'), 'k_force', "#1 $tag, forced user, empty password");
		must_fail(attempt($proxy, 'k_force', 'wrong', 'fdb'), 'k_force', "#1 $tag, forced user, wrong password");
		must_fail(attempt($proxy, 'k_force', 'force_pw', 'postgres'), 'k_force',
			"#1 $tag, forced user, its server password, to another database");

		if ($gen == 1) {
			$proxy->set_userlist(userlist_for(2));
			$proxy->reload;
			my $deadline = time + 5;
			while (time < $deadline) {
				last if attempt($proxy, 'k_plain', pw_of('plain', 2), 'pgslab')->{ready};
				sleep(0.2);
			}
		}
	}
	ok($proxy->is_running, "$auth: pgslab still running");
	$proxy->stop;
}

is(scalar(keys %shapes), 1, '#13: every refusal has the same message apart from the user name (and the exchange)')
    or diag(join("\n", map { "  \"$_\": " . scalar(@{ $shapes{$_} }) . ' cases, e.g. ' . $shapes{$_}[0] } sort keys %shapes));

done_testing();
