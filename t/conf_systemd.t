#!/usr/bin/perl
# conf.d/glm-engine.service: systemd-analyze verify finds nothing to say
# about it (an unknown key or a bad value is only a warning there, so the
# output must be empty), and it serves the socket conf.d/glm.conf names,
# with the group and mode glm.conf expects.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use File::Temp qw(tempdir);
use GlmTest;
use Test::More;

my $unit = GlmTest::read_file("$GlmTest::REPO/conf.d/glm-engine.service");
my $conf = GlmTest::read_file("$GlmTest::REPO/conf.d/glm.conf");

my ($sock) = $conf =~ /^\s*glm_engine unix:(\S+);/m;
ok($sock, "glm.conf names the engine socket");
like($unit, qr{^\s+--socket \Q$sock\E \\$}m, "the unit serves $sock");
like($unit, qr{--socket-group www-data --socket-mode 0660}, 'group www-data, 0660');
like($conf, qr/^user www-data;/m, 'glm.conf\'s workers run as www-data');
like($unit, qr/^RuntimeDirectory=glm$/m, 'RuntimeDirectory=glm');
like($unit, qr/^Restart=on-failure$/m, 'Restart=on-failure');

SKIP: {
    my $sa = `command -v systemd-analyze 2>/dev/null`;
    chomp $sa;
    skip 'systemd-analyze not installed: the unit was not verified', 2
        unless $sa;

    # verify wants ExecStart's binary to exist: point it at the build's
    my $bin = -x "$GlmTest::REPO/build/glm-engine"
              ? "$GlmTest::REPO/build/glm-engine" : '/bin/true';
    (my $copy = $unit) =~ s{^ExecStart=/usr/local/bin/glm-engine }
                           {ExecStart=$bin }m;
    isnt($copy, $unit, 'ExecStart runs /usr/local/bin/glm-engine');

    my $dir = tempdir('glm-unit-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
    GlmTest::write_file("$dir/glm-engine.service", $copy);
    my $out = `$sa verify $dir/glm-engine.service 2>&1`;
    my $rc = $? >> 8;
    ok($rc == 0 && $out eq '', 'systemd-analyze verify: no complaint')
        or diag("exit $rc:\n$out");
}

done_testing();
