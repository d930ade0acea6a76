# dbd_pg.pl -- DBD::Pg server-side prepares (pg_server_prepare => 1: each
# statement prepared once, executed across transactions) through pgslab,
# for test/t/074_prep_drivers.pl: 20 forked clients, 50 transactions each.
# Prints "ok=<n> errors=<n> digest=<md5>".
#
# usage: perl dbd_pg.pl host port user password tag

use strict;
use warnings;

use DBI;
use Digest::MD5 qw(md5_hex);
use POSIX ();

my ($host, $port, $user, $pw, $tag) = @ARGV;
my ($CLIENTS, $TXNS) = (20, 50);

sub work
{
	my ($k) = @_;
	# the statement handles outlive every transaction (072 frees handles
	# inside transactions: DBD::Pg's SQL DEALLOCATE)
	my $dbh = DBI->connect("dbi:Pg:dbname=postgres;host=$host;port=$port", $user, $pw,
		{ AutoCommit => 0, RaiseError => 1, PrintError => 0, pg_server_prepare => 1 });
	my $s1 = $dbh->prepare('SELECT $1::int + $2::int AS v, md5($3::text) AS t');
	my $s2 = $dbh->prepare('INSERT INTO drv_items (tag, client, i) VALUES ($1, $2, $3)');
	my $s3 = $dbh->prepare('SELECT count(*)::int AS n FROM drv_items WHERE tag = $1 AND client = $2');
	my $acc = '';
	for my $i (0 .. $TXNS - 1) {
		$s1->execute($i, $k, "$k:$i");
		my ($v, $t) = $s1->fetchrow_array;
		$s1->finish;
		$s2->execute($tag, $k, $i) == 1 or die "insert did not insert one row\n";
		$s3->execute($tag, $k);
		my ($n) = $s3->fetchrow_array;
		$s3->finish;
		$dbh->commit;
		$acc .= "$v,$t,$n;";
	}
	$dbh->disconnect;
	return $acc;
}

my @kids;
for my $k (0 .. $CLIENTS - 1) {
	pipe(my $r, my $w) or die "pipe: $!";
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		close $r;
		alarm 60;
		my $acc = eval { work($k) };
		print $w defined $acc ? "ok $acc" : "error $@";
		close $w;
		POSIX::_exit(0);
	}
	close $w;
	push @kids, [ $pid, $r ];
}
my ($all, @errs) = ('');
for my $kid (@kids) {
	my ($pid, $r) = @$kid;
	my $out = do { local $/; <$r> } // '';
	waitpid($pid, 0);
	if ($out =~ /^ok (.*)/s) {
		$all .= $1;
	} else {
		$out =~ s/\s+$//;
		push @errs, $out ne '' ? $out : "child exited with status $?";
	}
}
printf "ok=%d errors=%d digest=%s%s\n", $CLIENTS - @errs, scalar @errs, md5_hex($all),
    @errs ? ' ' . join(' | ', @errs[0 .. ($#errs < 2 ? $#errs : 2)]) : '';
exit(@errs ? 1 : 0);
