#!/usr/bin/perl
# bench/lines.py's Perl side: N lines of 60 bytes through a socketpair, read
# with AnyEvent::Handle's line reader spelled as asked; prints lines/s.
# usage: perl lines.pl N EOL(""|"\n"|"\015\012"|qr/.../) lf|crlf [line|regex]
use strict;
use warnings;
use EV;
use AnyEvent;
use AnyEvent::Handle;
use Socket;
use Time::HiRes ();

my ($n, $eol_src, $end, $type) = @ARGV;
$type ||= "line";
my $eol = length $eol_src ? eval $eol_src : undef;
socketpair my $r, my $w, AF_UNIX, SOCK_STREAM, 0 or die "socketpair: $!";
my $data = ("x" x 60 . ($end eq "crlf" ? "\015\012" : "\012")) x $n;
my $pid = fork // die "fork: $!";
unless ($pid) { close $r; syswrite $w, $data; exit 0 }
close $w;
my $cv = AE::cv;
my $count = 0;
my $h = AnyEvent::Handle->new (fh => $r, on_error => sub { $cv->croak ($_[2]) });
my $got; $got = sub {
   return $cv->send if ++$count == $n;
   $_[0]->push_read ($type => (defined $eol ? ($eol) : ()), $got);
};
my $start = Time::HiRes::time;
$h->push_read ($type => (defined $eol ? ($eol) : ()), $got);
$cv->recv;
printf "%.0f\n", $n / (Time::HiRes::time - $start);
waitpid $pid, 0;
