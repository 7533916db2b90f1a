#!/usr/bin/perl
# A TLS client on AnyEvent::Handle that checks the server's certificate.
# Twin: tls_client.py.
# usage: perl tls_client.pl HOST PORT [CA_FILE]   (no CA_FILE: the system's CAs)
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Handle;
use Net::SSLeay;

$| = 1; # print each line at once

my ($host, $port, $ca_file) = @ARGV;

my $done = AE::cv;

my $hdl = new AnyEvent::Handle
   connect     => [$host => $port],
   tls         => "connect",
   # the defaults check nothing; this is the secure setting (plus our CA)
   tls_ctx     => { verify => 1, verify_peername => "https", ca_file => $ca_file },
   on_connect  => sub {
      my ($hdl, $peerhost, $peerport) = @_;
      print "connected to $peerhost:$peerport\n";
   },
   on_starttls => sub {
      my ($hdl, $success, $message) = @_;
      unless ($success) {
         warn "tls_client: $message\n"; # the TLS library's words: not compared
         print "TLS handshake failed\n";
         $hdl->destroy;
         return $done->send;
      }
      # $hdl->{tls} is the TLS session: ask it for the server's certificate
      my $cert = Net::SSLeay::get_peer_certificate ($hdl->{tls});
      print "TLS established, server certificate for ",
         Net::SSLeay::X509_NAME_oneline (Net::SSLeay::X509_get_subject_name ($cert)), "\n";
   },
   on_error    => sub {
      my ($hdl, $fatal, $message) = @_;
      print "error: $!\n";
      $hdl->destroy;
      $done->send;
   },
   on_eof      => sub {
      my ($hdl) = @_;
      print "the server closed the connection\n";
      $hdl->destroy;
      $done->send;
   };

# the request goes out as soon as the handshake is done
$hdl->push_write ("hello server\015\012");

# print each line the server sends (a read still queued at EOF would be
# an EPIPE error instead of on_eof, so queue one only when data is there)
$hdl->on_read (sub {
   $_[0]->push_read (line => sub {
      my ($hdl, $line) = @_;
      print "server says: $line\n";
   });
});

$done->recv;
