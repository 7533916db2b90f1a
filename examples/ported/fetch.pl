#!/usr/bin/perl
# Parallel HTTP GETs with AnyEvent::HTTP, and a summary.  Twin: fetch.py.
# usage: perl fetch.pl [-n MAX_PER_HOST] [-t TIMEOUT] [-f FILE] [URL...]
# FILE lists more URLs, one a line (blank lines and #comments skipped).
# Progress goes to stderr, the table to stdout; the exit status is 1 unless
# every answer was a 2xx.
use strict;
use warnings;
use AnyEvent;
use AnyEvent::HTTP;
use Getopt::Std;
use List::Util qw(max);

my $usage = "usage: $0 [-n MAX_PER_HOST] [-t TIMEOUT] [-f FILE] [URL...]\n";
my %opt = (n => 4, t => 30);
getopts "n:t:f:", \%opt or die $usage;
$AnyEvent::HTTP::MAX_PER_HOST = $opt{n}; # connections at once to one host

my @urls = @ARGV;
if (defined $opt{f}) {
   open my $fh, "<", $opt{f} or die "$opt{f}: $!\n";
   while (<$fh>) {
      s/^\s+//; s/\s+$//;
      push @urls, $_ unless /^(#|$)/;
   }
}
die $usage unless @urls;

my @result; # [status, bytes, seconds] for each URL by its index
my $finished = 0;
my $t0 = AE::time;

# all requests at once; AnyEvent::HTTP queues what exceeds MAX_PER_HOST
my $cv = AE::cv;
for my $i (0 .. $#urls) {
   my $start = AE::time;
   $cv->begin;
   http_get $urls[$i],
      timeout => $opt{t},               # seconds without progress
      recurse => 5,                     # redirections followed at most
      headers => { "User-Agent" => "fetch/1.0" },
      sub {
         my ($body, $hdr) = @_;
         my $secs  = AE::time - $start;
         my $nbytes = defined $body ? length $body : 0; # no body on errors (59x)
         $result[$i] = [$hdr->{Status}, $nbytes, $secs];
         printf STDERR "[%d/%d] %d %d bytes %.3fs %s%s%s\n",
            ++$finished, scalar @urls, $hdr->{Status}, $nbytes, $secs, $urls[$i],
            ($hdr->{URL} ne $urls[$i] ? " -> $hdr->{URL}" : ""),  # redirected
            ($hdr->{Status} =~ /^2/ ? "" : " ($hdr->{Reason})");
         $cv->end;
      };
}
$cv->recv;
my $elapsed = AE::time - $t0;

# the table, in the order of the arguments
my $w = max 3, map length, @urls;
my ($ok, $total) = (0, 0);
printf "%-*s %6s %10s %8s\n", $w, "URL", "STATUS", "BYTES", "SECONDS";
for my $i (0 .. $#urls) {
   my ($status, $nbytes, $secs) = @{ $result[$i] };
   printf "%-*s %6d %10d %8.3f\n", $w, $urls[$i], $status, $nbytes, $secs;
   $ok++ if $status =~ /^2/;
   $total += $nbytes;
}
printf "%-*s %6s %10d %8.3f\n", $w, "total", "$ok/" . @urls, $total, $elapsed;
printf "%.1f requests/s\n", @urls / $elapsed;
exit ($ok == @urls ? 0 : 1);
