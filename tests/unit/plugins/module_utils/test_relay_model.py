# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay model's rules, each with an input it must refuse, and the Postfix state it computes.

No host, no container: load() and Relay.wanted() are plain Python.
"""

from __future__ import annotations

import functools
import os
import re

import pytest
import yaml

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model
from ansible_collections.smarthost.postfix.tests.unit.plugins.module_utils import model_input

A = dict(host='smtp-a.example.net', username='relay-a', password='A pass:with spaces')
B = dict(host='smtp-b.example.net', port=2525, tls='verify', username='relay-b', password='B-pass')
HOST = model.Host('3.7.11', 'relay1.example.com')

relay = functools.partial(model_input.load, [A, B])
refused = functools.partial(model_input.refused, [A])
one_error = functools.partial(model_input.one_error, [A])


def main_cf(**params):
    return relay(**params).wanted(HOST).parameters


# ---- control characters: in every string that reaches a Postfix file --------------------------------

CONTROL = ['\x00', '\t', '\n', '\x0b', '\x0c', '\r', '\x1f', '\x7f', '\x85', '\u2028', '\u2029']


@pytest.mark.parametrize('char', CONTROL)
@pytest.mark.parametrize('field, params', [
    ('relay_upstreams[0].host', lambda c: dict(upstreams=[dict(A, host='smtp-a.example.net' + c)])),
    ('relay_upstreams[0].username', lambda c: dict(upstreams=[dict(A, username='relay' + c + 'a')])),
    ('relay_upstreams[0].password', lambda c: dict(upstreams=[dict(A, password='Top' + c + 'Secret42')])),
    ('relay_mynetworks[1]', lambda c: dict(mynetworks=['127.0.0.0/8', '10.0.0.0/8' + c])),
    ('relay_inet_interfaces[1]', lambda c: dict(inet_interfaces=['127.0.0.1', '::1' + c])),
    ('relay_myhostname', lambda c: dict(myhostname='relay' + c + '.example.com')),
    ('relay_myorigin', lambda c: dict(myorigin='example.com' + c)),
    ('relay_sender_address', lambda c: dict(sender_address='alerts@example.com' + c)),
    ('relay_root_forward', lambda c: dict(root_forward='ops@example.com' + c)),
    ('relay_tls_ca_file', lambda c: dict(tls_ca_file='/etc/ssl/ca.pem' + c)),
    ('relay_extra_parameters.mydomain', lambda c: dict(extra_parameters={'mydomain': 'example.com' + c})),
    ('relay_extra_parameters.mydomain?', lambda c: dict(extra_parameters={'mydomain' + c: 'example.com'})),
    ('relay_sender_rewrite[root@relay1.example.com]', lambda c: dict(sender_rewrite={'root@relay1.example.com': 'a@example.com' + c})),
])
def test_control_characters_are_refused_and_never_shown(field, params, char):
    message = one_error(**params(char))
    assert message.startswith(field + ': ')
    assert char not in message
    assert 'Secret42' not in message


def test_the_reproduced_open_relay_injection_is_refused():
    message = one_error(inet_interfaces=['127.0.0.1', '::1%0\nrelay_domains = static:all'])
    assert message.startswith('relay_inet_interfaces[1]:') and 'relay_domains' not in message


@pytest.mark.parametrize('address', ['fe80::1%eth0', '::1%0'])
def test_ipv6_zone_ids_are_refused(address):
    assert 'no zone ids' in one_error(inet_interfaces=[address])
    assert one_error(mynetworks=[address + '/128']).startswith('relay_mynetworks[0]:')


def test_a_trailing_newline_does_not_pass_an_anchored_check():
    for params in (dict(myhostname='relay.example.com\n'), dict(upstreams=[dict(A, host='a.example.net\n')]),
                   dict(extra_parameters={'smtp_fallback_relay\n': '[evil.example]:25'})):
        assert refused(**params)


# ---- lookup-table sources: only the newline ends a line ----------------------------------------------

def test_map_values_hold_no_character_that_splits_a_line_for_python_but_not_postfix():
    # \x0b in a username made --diff print the entry unmasked; \x0c rewrote the map on every run.
    assert refused(upstreams=[dict(A, username='leaky\x0b', password='TopSecret42')])
    assert refused(upstreams=[dict(A, password='TopSecret42\x0c')])


# ---- no open relay by accident -----------------------------------------------------------------------

@pytest.mark.parametrize('network', ['0.0.0.0/0', '::/0', '8.0.0.0/16', '2001:db8::/32', '10.0.0.0/7', '0.0.0.0/1'])
def test_wide_networks_are_refused_without_the_override(network):
    message = one_error(mynetworks=['127.0.0.0/8', network])
    assert message.startswith('relay_mynetworks[1]:') and 'open relay' in message and 'relay_allow_wide_mynetworks' in message
    assert relay(mynetworks=[network], allow_wide_mynetworks=True).mynetworks


@pytest.mark.parametrize('network', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '203.0.113.0/24',
                                     '198.51.100.7/32', '198.51.100.7', 'fd00::/8', '2001:db8:1::/48', '[::1]/128'])
def test_private_and_narrow_public_networks_are_accepted(network):
    assert relay(mynetworks=[network]).mynetworks


@pytest.mark.parametrize('network, fragment', [
    ('10.89.77.0/33', 'not a valid CIDR'), ('relay.example.com', 'not a valid CIDR'),
    ('10.1.2.3/8', "did you mean '10.0.0.0/8'"), ('[10.0.0.0]/8', 'brackets are for IPv6 only'),
    ('2001:DB8::1/64', "did you mean '[2001:db8::]/64'"),
])
def test_bad_networks_name_the_entry(network, fragment):
    message = one_error(mynetworks=['127.0.0.0/8', network])
    assert message.startswith('relay_mynetworks[1]: ') and fragment in message


def test_networks_are_written_in_postfix_notation():
    assert main_cf(mynetworks=['127.0.0.0/8', '2001:DB8::/48', '[fd00::]/8'])['mynetworks'] == \
        '127.0.0.0/8, [2001:db8::]/48, [fd00::]/8'


# ---- extra_parameters: Postfix names, nothing the model owns, nothing that opens relaying ------------

@pytest.mark.parametrize('name, instead', [
    ('relayhost', 'relay_upstreams'), ('smtp_fallback_relay', 'relay_upstreams'), ('fallback_relay', 'relay_upstreams'),
    ('lmtp_fallback_relay', 'relay_upstreams'), ('mynetworks', 'relay_mynetworks'), ('relay_domains', 'relay_mynetworks'),
    ('smtpd_relay_restrictions', 'relay_mynetworks'), ('smtpd_recipient_restrictions', 'relay_recipient_domains'),
    ('smtpd_sender_restrictions', 'relay_sender_allowlist'),
    ('smtp_sasl_password_maps', 'relay_upstreams'), ('transport_maps', 'relay_routes'),
    ('sender_dependent_relayhost_maps', 'relay_upstreams'), ('sender_dependent_default_transport_maps', 'relay_routes'),
    ('relay-alpha_destination_rate_delay', 'relay_routes'), ('sender_canonical_maps', 'relay_sender_address'),
    ('header_checks', 'relay_sender_address'), ('smtp_sasl_mechanism_filter', 'relay_sasl_mechanisms'),
    ('smtp_tls_cert_file', 'relay_tls_client_cert'), ('smtp_destination_rate_delay', 'relay_rate_delay'),
    ('smtp_sender_dependent_authentication', 'relay_upstreams'), ('inet_interfaces', 'relay_inet_interfaces'),
    ('smtp_tls_CAfile', 'relay_tls_ca_file'), ('smtp_generic_maps', 'relay_sender_rewrite'),
    ('smtp_mx_address_limit', 'relay_upstream_address_limit'),
])
def test_extra_parameters_refuse_what_the_model_owns_or_what_opens_relaying(name, instead):
    message = one_error(extra_parameters={name: 'x'})
    assert message.startswith('relay_extra_parameters.%s: ' % name) and message.endswith('use %s instead' % instead)


def test_every_parameter_the_model_writes_is_refused_in_extra_parameters():
    for parameter in model.MAIN_CF:
        assert one_error(extra_parameters={parameter.name: 'x'}).startswith('relay_extra_parameters.' + parameter.name)
    assert one_error(extra_parameters={'biff': 'yes'}).endswith('it cannot be changed')


def test_extra_parameters_accept_real_names_with_capitals_and_convert_values():
    parameters = main_cf(extra_parameters={'smtp_tls_CApath': '/etc/ssl/certs', 'smtputf8_enable': False,
                                           'smtp_tls_mandatory_protocols': ['!SSLv2', '!SSLv3'], 'delay_warning_time': 4,
                                           'smtp_tls_exclude_ciphers': ''})
    assert parameters['smtp_tls_CApath'] == '/etc/ssl/certs'
    assert parameters['smtputf8_enable'] == 'no'
    assert parameters['smtp_tls_mandatory_protocols'] == '!SSLv2, !SSLv3'
    assert parameters['delay_warning_time'] == '4'
    assert relay(extra_parameters={'smtp_tls_exclude_ciphers': ''}).wanted(HOST).main_cf.endswith('smtp_tls_exclude_ciphers = \n')


@pytest.mark.parametrize('name', ['1abc', 'has space', 'semi;colon', 'a=b', '', '_leading'])
def test_extra_parameter_names_are_postfix_names(name):
    assert 'is not a Postfix parameter name' in one_error(extra_parameters={name: 'x'})


# ---- addresses are plain addresses -------------------------------------------------------------------

@pytest.mark.parametrize('address', ['|/usr/bin/logger@example.com', '/var/mail/x@example.com', ':include:/x@example.com',
                                     '"quoted"@example.com', 'a b@example.com', 'no-at-sign', 'ops@', '@example.com',
                                     'ops@exa_mple.com', 'ops@example.com,evil@example.com', '.ops@example.com'])
def test_root_forward_and_sender_address_are_plain_addresses(address):
    assert one_error(root_forward=address).startswith('relay_root_forward: ')
    assert one_error(sender_address=address).startswith('relay_sender_address: ')


def test_sender_rewrite_keys_may_be_domains_values_may_not():
    assert relay(sender_rewrite={'@relay1.example.com': 'alerts@example.com'}).sender_rewrite
    assert one_error(sender_rewrite={'@relay1.example.com': '@example.com'}).startswith('relay_sender_rewrite[@relay1.example.com]:')
    assert one_error(sender_rewrite={'|cmd@x.test': 'alerts@example.com'}).startswith('relay_sender_rewrite[|cmd@x.test] key:')


# ---- upstreams -----------------------------------------------------------------------------------------

def test_a_port_given_as_a_string_is_accepted():
    assert relay(upstreams=[dict(A, port='587')]).upstreams[0].nexthop == '[smtp-a.example.net]:587'


@pytest.mark.parametrize('port', [0, 70000, -1, '58 7', 'abc', True, 5.5, '99999'])
def test_ports_outside_the_range_are_refused(port):
    assert one_error(upstreams=[dict(A, port=port)]).startswith('relay_upstreams[0].port: ')


@pytest.mark.parametrize('host', ['', 'smtp a.example.net', '-bad.example.net', 'a..b', 'a' * 64 + '.example', 'exa_mple.com'])
def test_bad_host_names_are_refused(host):
    assert one_error(upstreams=[dict(A, host=host)]).startswith('relay_upstreams[0].host: ')


def test_next_hops_are_the_keys_of_relayhost_fallbacks_and_maps():
    r = relay(upstreams=[A, B, dict(host='2001:db8::25', port=25, tls='may'), dict(host='example.net', mx_lookup=True)])
    wanted = r.wanted(HOST)
    hops = ['[smtp-a.example.net]:587', '[smtp-b.example.net]:2525', '[ipv6:2001:db8::25]:25', 'example.net:587']
    assert wanted.parameters['relayhost'] == hops[0]
    assert wanted.parameters['smtp_fallback_relay'] == ', '.join(hops[1:])
    sasl, policy = wanted.tables[0], wanted.tables[1]
    assert sasl.entries == {hops[0]: 'relay-a:A pass:with spaces', hops[1]: 'relay-b:B-pass'}
    assert sasl.secret and sasl.mode == '0600' and policy.mode == '0644'
    # tls verify sends the host name in SNI (servername=hostname); an address gets no SNI.
    assert policy.entries == dict(zip(hops, ['encrypt', 'verify servername=hostname', 'may', 'encrypt']))
    assert wanted.parameters['smtp_tls_security_level'] == 'may'


@pytest.mark.parametrize('upstreams, field, fragment', [
    ([dict(A, password=None)], 'relay_upstreams[0]', 'username and password go together'),
    ([dict(A, username=None)], 'relay_upstreams[0]', 'username and password go together'),
    ([dict(A, username='a:b')], 'relay_upstreams[0].username', "must not contain ':'"),
    ([dict(A, password=' padded')], 'relay_upstreams[0].password', 'must not start or end with blanks'),
    ([dict(A, password='')], 'relay_upstreams[0].password', 'must not be empty'),
    ([dict(A, tls='none')], 'relay_upstreams[0]', 'relay_allow_plaintext_auth'),
    ([dict(A, implicit_tls=True, port=465, tls='may')], 'relay_upstreams[0]', 'implicit_tls needs tls encrypt'),
    ([dict(A, mx_lookup=True, host='192.0.2.1')], 'relay_upstreams[0]', 'mx_lookup needs a domain name'),
    ([A, dict(A, username='other')], 'relay_upstreams[1]', 'same next-hop as relay_upstreams[0]'),
    ([A, dict(B, implicit_tls=True, port=465)], 'relay_upstreams', 'cannot be mixed in one list of upstreams'),
    ([dict(A, pasword='typo')], 'relay_upstreams[0]', 'unknown key(s) pasword'),
    ([], 'relay_upstreams', 'at least one upstream'),
    (['smtp-a.example.net'], 'relay_upstreams[0]', 'must be a dict'),
])
def test_upstream_rules(upstreams, field, fragment):
    message = one_error(upstreams=upstreams)
    assert message.startswith(field + ': ') and fragment in message


def test_passwords_never_appear_in_messages():
    errors = refused(upstreams=[dict(A, password=' TopSecret42'), dict(B, password='TopSecret42\n'),
                                dict(host='c.example.net', password='TopSecret42')])
    assert len(errors) == 3 and not [e for e in errors if 'TopSecret42' in e]


def test_non_ascii_passwords_are_accepted():
    assert relay(upstreams=[dict(A, password='Pässwört-日本')]).sasl_entries() == \
        {'[smtp-a.example.net]:587': 'relay-a:Pässwört-日本'}


def test_plaintext_credentials_need_the_explicit_permission():
    r = relay(upstreams=[dict(A, tls='none')], allow_plaintext_auth=True)
    assert r.wanted(HOST).parameters['smtp_sasl_security_options'] == 'noanonymous'
    assert main_cf()['smtp_sasl_security_options'] == 'noanonymous, noplaintext'


def test_implicit_tls_for_all_upstreams():
    parameters = main_cf(upstreams=[dict(A, port=465, implicit_tls=True), dict(B, port=465, implicit_tls=True)])
    assert parameters['smtp_tls_wrappermode'] == 'yes'
    assert 'smtp_tls_wrappermode' not in main_cf()


# ---- scalars -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('params, field', [
    (dict(connect_timeout=0), 'relay_connect_timeout'), (dict(helo_timeout=301), 'relay_helo_timeout'),
    (dict(upstream_address_limit=0), 'relay_upstream_address_limit'), (dict(tls_ca_file='relative/ca.pem'), 'relay_tls_ca_file'),
    (dict(tls_ca_file='/etc/ssl/my ca.pem'), 'relay_tls_ca_file'), (dict(map_type='dbm'), 'relay_map_type'),
    (dict(state='gone'), 'relay_state'), (dict(inet_interfaces='everywhere'), 'relay_inet_interfaces'),
    (dict(inet_interfaces=['localhost']), 'relay_inet_interfaces[0]'), (dict(myorigin='$other'), 'relay_myorigin'),
    (dict(allow_plaintext_auth='yes'), 'relay_allow_plaintext_auth'), (dict(no_such_option=1), 'relay_no_such_option'),
])
def test_scalar_rules(params, field):
    assert one_error(**params).startswith(field + ': ')


def test_the_prefix_names_fields_as_the_caller_spells_them():
    with pytest.raises(model.InputError) as failure:
        model.load(dict(upstreams=[dict(A, port=0)]))
    assert failure.value.errors == ['upstreams[0].port: 0 is not a port (1-65535)']
    assert str(failure.value) == 'Invalid relay input: upstreams[0].port: 0 is not a port (1-65535)'


def test_all_problems_are_reported_at_once():
    assert len(refused(upstreams=[dict(A, port=0), dict(B, tls='bogus')], mynetworks=['0.0.0.0/0'], root_forward='x')) == 4


# ---- the wanted state ----------------------------------------------------------------------------------

def test_the_default_relay_main_cf():
    text = relay().wanted(HOST).main_cf
    assert text.startswith('# Managed by smarthost.postfix')
    assert 'relay_extra_parameters' in text.split('\n')[1]
    lines = text.split('\n')[2:-1]
    names = [line.split(' = ')[0] for line in lines]
    # Written only for the features that need them: implicit TLS, rewriting, routes, allowlists, limits, certificates.
    optional = {'smtp_tls_wrappermode', 'smtp_generic_maps', 'smtpd_sender_restrictions', 'smtpd_recipient_restrictions',
                'sender_dependent_default_transport_maps', 'transport_maps', 'smtp_sasl_mechanism_filter',
                'smtp_tls_cert_file', 'smtp_tls_key_file', 'smtp_destination_concurrency_limit',
                'smtp_destination_rate_delay', 'sender_canonical_maps', 'sender_canonical_classes', 'header_checks',
                'always_add_missing_headers'}
    assert names == [p.name for p in model.MAIN_CF if p.name not in optional]
    parameters = main_cf()
    assert parameters['compatibility_level'] == '3.6'
    assert parameters['myhostname'] == 'relay1.example.com'
    assert parameters['inet_interfaces'] == 'loopback-only'
    assert parameters['mynetworks'] == '127.0.0.0/8, [::1]/128'
    assert parameters['smtpd_relay_restrictions'] == 'permit_mynetworks, reject_unauth_destination'
    assert parameters['smtp_sasl_password_maps'] == 'hash:/etc/postfix/relay_sasl_passwd'
    assert parameters['smtp_connect_timeout'] == '5s' and parameters['smtp_mx_address_limit'] == '1'
    assert parameters['smtp_tls_CAfile'] == '/etc/ssl/certs/ca-certificates.crt'


@pytest.mark.parametrize('version, level', [('3.7.11', '3.6'), ('3.10.5', '3.6'), ('3.5.25', '2'), ('2.10.1', '2'), ('', '3.6')])
def test_compatibility_level_follows_the_postfix_version(version, level):
    assert relay().wanted(model.Host(version, 'x.example.com')).parameters['compatibility_level'] == level


def test_without_credentials_there_is_no_sasl_map():
    wanted = relay(upstreams=[dict(host='hub.example.net', port=25, tls='may')]).wanted(HOST)
    assert wanted.parameters['smtp_sasl_auth_enable'] == 'no'
    assert 'smtp_sasl_password_maps' not in wanted.parameters
    assert wanted.tables[0].name == model.SASL_MAP and wanted.tables[0].entries is None


def test_sender_address_covers_the_local_domains_and_rewrite_wins():
    wanted = relay(sender_address='alerts@example.com', myorigin='example.org',
                   sender_rewrite={'root@relay1.example.com': 'root-alerts@example.com'}).wanted(HOST)
    assert wanted.tables[2].entries == {
        '@relay1.example.com': 'alerts@example.com', '@example.org': 'alerts@example.com', '@localhost': 'alerts@example.com',
        '@localhost.localdomain': 'alerts@example.com', 'root@relay1.example.com': 'root-alerts@example.com'}
    assert wanted.parameters['smtp_generic_maps'] == 'hash:/etc/postfix/relay_generic'
    assert relay().wanted(HOST).tables[2].entries is None


def test_absent_is_local_only_and_wants_no_relay_table():
    r = model.load(dict(state='absent', upstreams='not checked', extra_parameters={'mydomain': 'example.com'}), 'relay_')
    wanted = r.wanted(HOST)
    assert wanted.parameters == {
        'compatibility_level': '3.6', 'myhostname': 'relay1.example.com', 'myorigin': '$myhostname',
        'mydestination': '$myhostname, localhost.$mydomain, localhost', 'alias_maps': 'hash:/etc/aliases',
        'alias_database': 'hash:/etc/aliases', 'default_database_type': 'hash', 'inet_interfaces': 'loopback-only',
        'mynetworks': '127.0.0.0/8, [::1]/128', 'smtpd_relay_restrictions': 'permit_mynetworks, reject_unauth_destination',
        'biff': 'no', 'append_dot_mydomain': 'no'}
    assert all(table.entries is None for table in wanted.tables)
    assert wanted.root_forward is None and wanted.master_cf_enable == []


def test_removable_files_are_only_the_relays_own():
    wanted = relay(map_type='lmdb').wanted(HOST)
    names = ['relay_sasl_passwd', 'relay_sasl_passwd.lmdb', 'relay_sasl_passwd.db', 'relay_generic', 'relay_generic.db',
             'relay_preflight.sha256', 'relay_recipients', 'relay_recipients.db', 'main.cf', 'relay_tls_policy.lmdb']
    assert wanted.removable(names, 'lmdb') == ['relay_generic', 'relay_generic.db', 'relay_preflight.sha256',
                                               'relay_sasl_passwd.db']


def test_upstream_changes_that_the_preflight_checks():
    wanted = relay().wanted(HOST)
    live = dict(wanted.parameters)
    assert wanted.probe_parameters(live) == []
    live.update(relayhost='[old.example.net]:587', smtp_tls_CAfile='/old.pem', mynetworks='127.0.0.0/8')
    assert wanted.probe_parameters(live) == ['relayhost', 'smtp_tls_CAfile']
    assert [table.probe for table in wanted.tables] == [True, True, False, False, False, False]


def test_tls_connection_reuse_enables_tlsproxy():
    assert relay().wanted(HOST).master_cf_enable == [model.TLSPROXY_SERVICE]
    assert relay(tls_connection_reuse=False).wanted(HOST).master_cf_enable == []
    assert relay(tls_connection_reuse=False).wanted(HOST).parameters['smtp_tls_connection_reuse'] == 'no'


def test_options_defaults_are_used_for_missing_and_none_values():
    r = model.load(dict(upstreams=[dict(host='a.example.net', port=None)], mynetworks=None))
    assert r.upstreams[0].port == model.DEFAULT_PORT and r.upstreams[0].tls == model.DEFAULT_TLS
    assert [str(n) for n in r.mynetworks] == ['127.0.0.0/8', '::1/128']


# ---- SNI: servername in the TLS policy, exactly what the probe sends ---------------------------------

@pytest.mark.parametrize('upstream, sni, policy', [
    (dict(A, tls='verify'), 'smtp-a.example.net', 'verify servername=hostname'),
    (dict(A, tls='secure'), 'smtp-a.example.net', 'secure servername=hostname'),
    (dict(A, tls='encrypt'), None, 'encrypt'),
    (dict(A, tls='may'), None, 'may'),
    (dict(A, host='192.0.2.25', tls='verify'), None, 'verify'),
    (dict(A, tls='encrypt', servername='mail.example.org'), 'mail.example.org', 'encrypt servername=mail.example.org'),
    (dict(A, tls='verify', servername='mail.example.org'), 'mail.example.org', 'verify servername=mail.example.org'),
    (dict(A, host='192.0.2.25', tls='verify', servername='mail.example.org'), 'mail.example.org',
     'verify servername=mail.example.org'),
])
def test_sni_is_written_into_the_tls_policy_as_the_probe_sends_it(upstream, sni, policy):
    r = relay(upstreams=[upstream])
    assert r.upstreams[0].sni == sni == model.sni_name(upstream['host'], upstream['tls'], upstream.get('servername'))
    assert r.tls_policy_entries() == {r.upstreams[0].nexthop: policy}
    assert r.upstreams[0].probe_params()['servername'] == upstream.get('servername')


@pytest.mark.parametrize('servername, fragment', [
    ('192.0.2.1', 'is an IP address; SNI carries DNS names only'), ('hostname', "Postfix's keyword"),
    ('bad name.example', 'is not a host name'), ('mail.example.org\n', 'control character (U+000A)'), ('', 'must not be empty'),
])
def test_bad_servernames_are_refused(servername, fragment):
    message = one_error(upstreams=[dict(A, servername=servername)])
    assert message.startswith('relay_upstreams[0].servername: ') and fragment in message


def test_no_servername_without_tls():
    message = one_error(upstreams=[dict(host='hub.example.net', port=25, tls='none', servername='hub.example.net')])
    assert message == 'relay_upstreams[0].servername: needs TLS; the upstream has tls none'


# ---- routes -----------------------------------------------------------------------------------------

C = dict(host='smtp-c.example.net', port=465, implicit_tls=True, tls='verify', username='route-c', password='C pass:x')
D = dict(host='hub.example.net', port=25, tls='may')


def route(**params):
    params.setdefault('name', 'alpha')
    params.setdefault('upstreams', [C])
    if 'senders' not in params and 'domains' not in params:
        params['senders'] = ['@alpha.example.com']
    return params


def route_error(**params):
    """The one message load() gives for one route built from params."""
    return one_error(upstreams=[A], routes=[route(**params)])


def test_a_route_is_an_smtp_transport_of_its_own_with_every_setting_overridden():
    r = relay(routes=[route(upstreams=[C, dict(C, host='smtp-b.example.net', tls='encrypt', username='route-b')],
                            sasl_mechanisms=['login', 'PLAIN'], concurrency_limit=2, rate_delay=1)])
    wanted = r.wanted(HOST)
    assert wanted.master_cf_block == (
        'relay-alpha unix  -       -       n       -       -       smtp\n'
        '  -o syslog_name=postfix/$service_name\n'
        '  -o smtp_fallback_relay=[smtp-b.example.net]:465\n'
        '  -o smtp_sasl_auth_enable=yes\n'
        '  -o smtp_sasl_password_maps=hash:/etc/postfix/relay_route_alpha_sasl\n'
        '  -o smtp_sasl_mechanism_filter=LOGIN,PLAIN\n'
        '  -o smtp_tls_policy_maps=hash:/etc/postfix/relay_route_alpha_tls\n'
        '  -o smtp_tls_security_level=encrypt\n'
        '  -o smtp_tls_wrappermode=yes\n'
        '  -o smtp_tls_cert_file=\n'
        '  -o smtp_tls_key_file=\n')
    # The queue manager reads no -o: the limits are the transport's main.cf parameters.
    assert wanted.parameters['relay-alpha_destination_concurrency_limit'] == '2'
    assert wanted.parameters['relay-alpha_destination_rate_delay'] == '1s'
    assert wanted.parameters['sender_dependent_default_transport_maps'] == 'hash:/etc/postfix/relay_sender_routes'
    assert 'transport_maps' not in wanted.parameters
    tables = dict((table.name, table) for table in wanted.tables)
    assert tables['relay_sender_routes'].entries == {'@alpha.example.com': 'relay-alpha:[smtp-c.example.net]:465'}
    assert tables['relay_route_alpha_tls'].entries == {
        '[smtp-c.example.net]:465': 'verify servername=hostname', '[smtp-b.example.net]:465': 'encrypt'}
    assert tables['relay_route_alpha_sasl'].secret and tables['relay_route_alpha_sasl'].mode == '0600'
    assert tables['relay_route_alpha_sasl'].probe and tables['relay_route_alpha_tls'].probe
    assert [route.label for route in wanted.routes] == ['default route', 'route alpha']


def test_credentials_never_cross_routes():
    hub = route(name='hub', domains=['internal.example.com'], upstreams=[D])
    r = relay(upstreams=[A, B], routes=[route(upstreams=[C]), hub])
    tables = dict((table.name, table.entries) for table in r.wanted(HOST).tables)
    assert tables['relay_sasl_passwd'] == {'[smtp-a.example.net]:587': 'relay-a:A pass:with spaces',
                                           '[smtp-b.example.net]:2525': 'relay-b:B-pass'}
    assert tables['relay_route_alpha_sasl'] == {'[smtp-c.example.net]:465': 'route-c:C pass:x'}
    # A route without credentials has no map and authenticates nowhere, whatever main.cf says.
    assert tables['relay_route_hub_sasl'] is None
    service = r.routes[1].service(r)
    assert '  -o smtp_sasl_auth_enable=no\n  -o smtp_sasl_password_maps=\n' in service and '  -o smtp_fallback_relay=\n' in service


def test_domain_routes_go_through_transport_maps_and_a_domain_covers_its_subdomains_with_a_dot():
    r = relay(routes=[route(name='hub', domains=['internal.example.com', '.Internal.Example.com'], upstreams=[D])])
    wanted = r.wanted(HOST)
    assert wanted.parameters['transport_maps'] == 'hash:/etc/postfix/relay_transport'
    assert dict((t.name, t.entries) for t in wanted.tables)['relay_transport'] == {
        'internal.example.com': 'relay-hub:[hub.example.net]:25', '.internal.example.com': 'relay-hub:[hub.example.net]:25'}
    assert 'sender_dependent_default_transport_maps' not in wanted.parameters


def test_465_and_587_in_different_routes_but_not_in_one_list():
    r = relay(upstreams=[A], routes=[route(upstreams=[C])])
    assert not r.upstreams[0].implicit_tls and r.routes[0].implicit_tls
    assert 'smtp_tls_wrappermode' not in r.wanted(HOST).parameters
    message = route_error(upstreams=[C, A])
    assert message.startswith('relay_routes[0].upstreams: implicit_tls (port 465) and STARTTLS upstreams cannot be mixed')
    assert 'make all of them implicit_tls or none, or give the others a route of their own (relay_routes)' in message


@pytest.mark.parametrize('params, field, fragment', [
    (dict(name='Alpha'), 'relay_routes[0].name', 'is not a route name'),
    (dict(name='-alpha'), 'relay_routes[0].name', 'is not a route name'),
    (dict(name='a_b'), 'relay_routes[0].name', 'is not a route name'),
    (dict(name='a' * 33), 'relay_routes[0].name', 'is not a route name'),
    (dict(name='alpha\n'), 'relay_routes[0].name', 'control character (U+000A)'),
    (dict(senders=[], domains=[]), 'relay_routes[0]', 'a route needs senders, domains or both'),
    (dict(senders=['|/bin/sh@example.com']), 'relay_routes[0].senders[0]', 'is not a mail address'),
    (dict(senders=['alpha.example.com']), 'relay_routes[0].senders[0]', 'is not a mail address'),
    (dict(senders=['ops@192.0.2.1']), 'relay_routes[0].senders[0]', 'is not a mail address'),
    (dict(senders=['@alpha.example.com\u2028']), 'relay_routes[0].senders[0]', 'control character (U+2028)'),
    (dict(senders='@alpha.example.com'), 'relay_routes[0].senders', 'must be a list'),
    (dict(domains=['exa mple.com']), 'relay_routes[0].domains[0]', 'is not a domain name'),
    (dict(domains=['192.0.2.1']), 'relay_routes[0].domains[0]', 'is not a domain name'),
    (dict(domains=['localhost']), 'relay_routes[0].domains[0]', "is this host's own"),
    (dict(domains=['.localhost.localdomain']), 'relay_routes[0].domains[0]', "is this host's own"),
    (dict(upstreams=[]), 'relay_routes[0].upstreams', 'at least one upstream is required'),
    (dict(upstreams=[dict(C, port=0)]), 'relay_routes[0].upstreams[0].port', 'is not a port'),
    (dict(upstreams=[dict(C, password='x\x0b')]), 'relay_routes[0].upstreams[0].password', 'control character (U+000B)'),
    (dict(upstreams=[C, dict(C, username='other')]), 'relay_routes[0].upstreams[1]', 'same next-hop as relay_routes[0].upstreams[0]'),
    (dict(upstreams=[dict(C, tls='none', implicit_tls=False)]), 'relay_routes[0].upstreams[0]', 'relay_allow_plaintext_auth'),
    (dict(senders=[], domains=['internal.example.com'], sender_address='relay@example.com'), 'relay_routes[0].sender_address',
     'the route needs senders'),
    (dict(sender_address='|cmd@example.com'), 'relay_routes[0].sender_address', 'is not a mail address'),
    (dict(keep_reply_to=True), 'relay_routes[0].keep_reply_to', 'set sender_address'),
    (dict(keep_reply_to='yes', sender_address='relay@example.com'), 'relay_routes[0].keep_reply_to', 'must be true or false'),
    (dict(sasl_mechanisms=['XOAUTH2']), 'relay_routes[0].sasl_mechanisms[0]', "'XOAUTH2' is not one of PLAIN, LOGIN, CRAM-MD5"),
    (dict(sasl_mechanisms=[]), 'relay_routes[0].sasl_mechanisms', 'must name at least one mechanism'),
    (dict(sasl_mechanisms=['PLAIN'], upstreams=[D]), 'relay_routes[0].sasl_mechanisms', 'no upstream of the route alpha has credentials'),
    (dict(concurrency_limit=0), 'relay_routes[0].concurrency_limit', 'is not a number of connections (1-100)'),
    (dict(concurrency_limit=101), 'relay_routes[0].concurrency_limit', 'is not a number of connections (1-100)'),
    (dict(rate_delay=-1), 'relay_routes[0].rate_delay', 'is not a number of seconds (0-3600)'),
    (dict(rate_delay=3601), 'relay_routes[0].rate_delay', 'is not a number of seconds (0-3600)'),
    (dict(rate_delay='1s'), 'relay_routes[0].rate_delay', 'is not a number of seconds'),
    (dict(fallbacks=[C]), 'relay_routes[0]', 'unknown key(s) fallbacks'),
])
def test_route_rules(params, field, fragment):
    message = route_error(**params)
    assert message.startswith(field + ': ') and fragment in message, message


def test_routes_must_be_dicts_in_a_list():
    assert one_error(routes=route()) == 'relay_routes: must be a list of routes'
    assert one_error(routes=['alpha']) == 'relay_routes[0]: must be a dict with at least name and upstreams'


def test_each_name_sender_and_domain_belongs_to_one_route():
    errors = refused(routes=[route(senders=['@alpha.example.com', 'ops@example.com'], domains=['internal.example.com']),
                             route(senders=['OPS@example.com'], domains=['internal.example.com'])])
    assert errors == ["relay_routes[1]: name 'alpha' is relay_routes[0]'s too; each belongs to one route",
                      "relay_routes[1]: sender 'ops@example.com' is relay_routes[0]'s too; each belongs to one route",
                      "relay_routes[1]: domain 'internal.example.com' is relay_routes[0]'s too; each belongs to one route"]


def test_a_rewritten_sender_must_route_as_the_routes_own_senders():
    errors = refused(routes=[route(sender_address='ops@example.com'),
                             route(name='bravo', senders=['ops@example.com'])])
    assert errors == ["relay_routes[0].sender_address: 'ops@example.com' belongs to relay_routes[1]: mail rewritten to it "
                      "would take that route"]
    assert refused(routes=[route(sender_address='ops@example.com'),
                           route(name='bravo', senders=['@bravo.example.com'], sender_address='ops@example.com')])
    # Its own sender, or an address of its own domain, is fine.
    assert relay(routes=[route(sender_address='relay@alpha.example.com')]).routes[0].sender_address == 'relay@alpha.example.com'


def test_myhostname_and_myorigin_are_no_route_domains():
    assert one_error(myhostname='relay1.example.com', routes=[route(domains=['relay1.example.com'])]).startswith(
        'relay_routes[0].domains[0]: ')
    assert one_error(myorigin='example.org', routes=[route(domains=['.example.org'])]).startswith('relay_routes[0].domains[0]: ')


# ---- route settings of the default route, from the top-level options ------------------------------------

def test_the_default_routes_settings_are_main_cf_parameters():
    parameters = main_cf(sasl_mechanisms=['login'], concurrency_limit=5, rate_delay=2)
    assert parameters['smtp_sasl_mechanism_filter'] == 'LOGIN'
    assert parameters['smtp_destination_concurrency_limit'] == '5'
    assert parameters['smtp_destination_rate_delay'] == '2s'
    assert one_error(sasl_mechanisms=['PLAIN'], upstreams=[D]).startswith(
        'relay_sasl_mechanisms: no upstream of the default route has credentials')
    assert one_error(rate_delay=5000).startswith('relay_rate_delay: ')


# ---- TLS client certificates ----------------------------------------------------------------------------

CERT = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2VydA==\n-----END CERTIFICATE-----\n'
KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgS2V5S2V5S2V5\n-----END PRIVATE KEY-----\n'


def test_a_client_certificate_is_a_secret_file_of_the_route():
    r = relay(tls_client_cert=CERT, tls_client_key=KEY.replace('\n', '\r\n'),
              routes=[route(tls_client_cert=CERT + CERT, tls_client_key=KEY)])
    wanted = r.wanted(HOST)
    files = dict((item.name, item) for item in wanted.files)
    assert files['relay_client.crt'].content == CERT and files['relay_client.key'].content == KEY
    assert files['relay_route_alpha_client.crt'].content == CERT + CERT
    assert all(files[name].secret and files[name].mode == '0600' and files[name].probe
               for name in ('relay_client.crt', 'relay_client.key', 'relay_route_alpha_client.key'))
    assert wanted.parameters['smtp_tls_cert_file'] == '/etc/postfix/relay_client.crt'
    assert wanted.parameters['smtp_tls_key_file'] == '/etc/postfix/relay_client.key'
    assert ('  -o smtp_tls_cert_file=/etc/postfix/relay_route_alpha_client.crt\n'
            '  -o smtp_tls_key_file=/etc/postfix/relay_route_alpha_client.key\n') in wanted.master_cf_block


@pytest.mark.parametrize('params, field, fragment', [
    (dict(tls_client_cert=CERT), 'relay_routes[0].tls_client_cert', 'go together'),
    (dict(tls_client_key=KEY), 'relay_routes[0].tls_client_cert', 'go together'),
    (dict(tls_client_cert='not a certificate', tls_client_key=KEY), 'relay_routes[0].tls_client_cert', 'must be PEM'),
    (dict(tls_client_cert=KEY, tls_client_key=KEY), 'relay_routes[0].tls_client_cert', 'CERTIFICATE blocks'),
    (dict(tls_client_cert='text\n' + CERT, tls_client_key=KEY), 'relay_routes[0].tls_client_cert', 'nothing else'),
    (dict(tls_client_cert=CERT, tls_client_key=KEY + KEY), 'relay_routes[0].tls_client_key', 'one PRIVATE KEY'),
    (dict(tls_client_cert=CERT, tls_client_key=KEY.replace('PRIVATE KEY', 'ENCRYPTED PRIVATE KEY')),
     'relay_routes[0].tls_client_key', 'no passphrase'),
    (dict(tls_client_cert=CERT, tls_client_key=KEY.replace('MIGH', 'MI\x00H')), 'relay_routes[0].tls_client_key', 'must be PEM'),
    (dict(tls_client_cert=CERT, tls_client_key=1234), 'relay_routes[0].tls_client_key', 'must be a string'),
    (dict(tls_client_cert=CERT, tls_client_key=KEY, upstreams=[dict(D, tls='none')]), 'relay_routes[0].tls_client_cert',
     'a client certificate needs TLS'),
])
def test_client_certificate_rules(params, field, fragment):
    message = route_error(**params)
    assert message.startswith(field + ': ') and fragment in message, message
    assert 'S2V5' not in message and 'MIGH' not in message


# ---- sender rewriting, per route or of every sender -------------------------------------------------

def test_a_route_rewrites_its_senders_on_receipt_and_keeps_routing_them():
    r = relay(routes=[route(senders=['@alpha.example.com', 'ops@example.com'], sender_address='Relay@Alpha.example.com',
                            keep_reply_to=True)])
    wanted = r.wanted(HOST)
    tables = dict((table.name, table.entries) for table in wanted.tables)
    assert tables['relay_sender_canonical'] == {'@alpha.example.com': 'relay@alpha.example.com',
                                                'ops@example.com': 'relay@alpha.example.com'}
    assert tables['relay_sender_routes']['relay@alpha.example.com'] == 'relay-alpha:[smtp-c.example.net]:465'
    assert wanted.parameters['sender_canonical_maps'] == 'hash:/etc/postfix/relay_sender_canonical'
    assert wanted.parameters['sender_canonical_classes'] == 'envelope_sender'
    assert wanted.parameters['header_checks'] == 'regexp:/etc/postfix/relay_header_checks'
    assert wanted.parameters['always_add_missing_headers'] == 'yes'
    assert r.header_rules() == [
        r'/^From:((.*[<[:space:],:;])?[^<>@[:space:],:;"()]+@alpha\.example\.com([>[:space:],;(].*)?)$/ REPLACE Reply-To:$1',
        r'/^From:((.*[<[:space:],:;])?ops@example\.com([>[:space:],;(].*)?)$/ REPLACE Reply-To:$1']
    plain = relay(routes=[route(sender_address='relay@alpha.example.com')])
    assert plain.header_rules()[0].endswith(' REPLACE From: relay@alpha.example.com')
    assert 'always_add_missing_headers' not in plain.wanted(HOST).parameters


def test_every_sender_rewritten_except_the_routes_that_keep_theirs():
    r = relay(sender_address='alerts@example.com', sender_address_scope='all', keep_reply_to=True,
              routes=[route(), route(name='bravo', senders=['@bravo.example.com'], sender_address='relay@bravo.example.com')])
    wanted = r.wanted(HOST)
    assert wanted.parameters['sender_canonical_maps'] == 'hash:/etc/postfix/relay_sender_canonical, static:alerts@example.com'
    assert dict((t.name, t.entries) for t in wanted.tables)['relay_sender_canonical'] == {
        '@alpha.example.com': '@alpha.example.com', '@bravo.example.com': 'relay@bravo.example.com'}
    rules = r.header_rules()
    assert rules[0].endswith(' DUNNO') and rules[1].endswith(' REPLACE From: relay@bravo.example.com')
    assert rules[2] == '/^From:(.*)$/ REPLACE Reply-To:$1'
    # No generic entries for the local domains: everything is rewritten on receipt.
    assert dict((t.name, t.entries) for t in wanted.tables)['relay_generic'] is None


def test_the_global_address_stays_with_the_default_route():
    r = relay(sender_address='alerts@alpha.example.com', sender_address_scope='all', routes=[route()])
    assert r.sender_route_entries()['alerts@alpha.example.com'] == 'DUNNO'
    assert one_error(sender_address='ops@example.com', sender_address_scope='all',
                     routes=[route(senders=['ops@example.com'])]) == (
        "relay_sender_address: 'ops@example.com' belongs to relay_routes[0]: mail rewritten to it would take that route")


@pytest.mark.parametrize('params, field', [
    (dict(sender_address_scope='all'), 'relay_sender_address_scope'),
    (dict(sender_address_scope='everything', sender_address='a@example.com'), 'relay_sender_address_scope'),
    (dict(keep_reply_to=True, sender_address='a@example.com'), 'relay_keep_reply_to'),
])
def test_global_rewriting_rules(params, field):
    assert one_error(**params).startswith(field + ': ')


def test_scope_local_keeps_the_generic_map_of_the_local_domains():
    wanted = relay(sender_address='alerts@example.com').wanted(HOST)
    assert dict((t.name, t.entries) for t in wanted.tables)['relay_generic']['@relay1.example.com'] == 'alerts@example.com'
    assert 'sender_canonical_maps' not in wanted.parameters and 'header_checks' not in wanted.parameters


@pytest.mark.parametrize('key, text', [('ops@ex+ample.com', r'ops@ex\+ample\.com'), ('a.b+c@x.test', r'a\.b\+c@x\.test')])
def test_regexp_literals_escape_what_means_something_in_a_regexp(key, text):
    assert model.ere_literal(key) == text


# ---- the SMTP allowlists --------------------------------------------------------------------------

def test_the_allowlists_are_regexp_tables_that_refuse_everything_else_permanently():
    r = relay(sender_allowlist=['@Alpha.example.com', 'ops@example.com'], recipient_domains=['remote.example', '.remote.example'])
    wanted = r.wanted(HOST)
    assert wanted.parameters['smtpd_sender_restrictions'] == 'check_sender_access regexp:/etc/postfix/relay_sender_allowlist'
    assert wanted.parameters['smtpd_recipient_restrictions'] == (
        'permit_auth_destination, check_recipient_access regexp:/etc/postfix/relay_recipient_domains')
    files = dict((item.name, item.content) for item in wanted.files)
    assert files['relay_sender_allowlist'] == ('/@alpha\\.example\\.com$/ OK\n/^ops@example\\.com$/ OK\n'
                                               '/./ 554 5.7.1 Sender address not allowed on this relay\n')
    assert files['relay_recipient_domains'] == ('/@remote\\.example$/ OK\n/@[^@]+\\.remote\\.example$/ OK\n'
                                                '/./ 554 5.7.1 Recipient domain not served by this relay\n')
    assert not [item for item in relay().wanted(HOST).files if item.content is not None]


def test_every_route_must_pass_the_allowlists():
    errors = refused(sender_allowlist=['@alpha.example.com', 'ops@bravo.example.com'], recipient_domains=['.example.org'],
                     routes=[route(senders=['@alpha.example.com', 'x@alpha.example.com', 'x@bravo.example.com']),
                             route(name='hub', domains=['a.b.example.org', 'example.org'], upstreams=[D])])
    assert errors == [
        "relay_routes[0].senders[2]: 'x@bravo.example.com' is not in relay_sender_allowlist: SMTP clients could not use the route",
        "relay_routes[1].domains[1]: 'example.org' is not in relay_recipient_domains: SMTP clients could not use the route"]


@pytest.mark.parametrize('params, field, fragment', [
    (dict(sender_allowlist=[]), 'relay_sender_allowlist', 'at least one entry'),
    (dict(sender_allowlist=['<>']), 'relay_sender_allowlist[0]', 'is not a mail address'),
    (dict(sender_allowlist='@example.com'), 'relay_sender_allowlist', 'must be a list'),
    (dict(recipient_domains=[]), 'relay_recipient_domains', 'at least one entry'),
    (dict(recipient_domains=['@example.com']), 'relay_recipient_domains[0]', 'is not a domain name'),
    (dict(recipient_domains=['example.com\r']), 'relay_recipient_domains[0]', 'control character (U+000D)'),
])
def test_allowlist_rules(params, field, fragment):
    message = one_error(**params)
    assert message.startswith(field + ': ') and fragment in message, message


# ---- what the relay owns and removes -------------------------------------------------------------------

def test_a_removed_route_leaves_no_file_behind():
    wanted = relay(routes=[route(name='bravo')]).wanted(HOST)
    names = ['relay_route_alpha_sasl', 'relay_route_alpha_sasl.db', 'relay_route_alpha_tls', 'relay_route_alpha_tls.lmdb',
             'relay_route_alpha_client.key', 'relay_route_bravo_tls', 'relay_route_bravo_tls.db', 'relay_route_notes.txt',
             'relay_sender_allowlist', 'relay_sender_routes', 'relay_sender_routes.db', 'relay_transport.db']
    assert wanted.removable(names, 'hash') == ['relay_route_alpha_client.key', 'relay_route_alpha_sasl',
                                               'relay_route_alpha_sasl.db', 'relay_route_alpha_tls',
                                               'relay_route_alpha_tls.lmdb', 'relay_sender_allowlist', 'relay_transport.db']


def test_absent_wants_no_route_no_block_and_no_file():
    r = model.load(dict(state='absent', routes='not checked'), 'relay_')
    wanted = r.wanted(HOST)
    assert wanted.master_cf_block == '' and wanted.routes == []
    assert all(item.content is None for item in wanted.files)
    assert wanted.removable(['relay_route_alpha_sasl', 'relay_header_checks', 'relay_client.key'], 'hash') == [
        'relay_client.key', 'relay_header_checks', 'relay_route_alpha_sasl']


def test_no_route_password_or_key_in_any_message():
    errors = refused(routes=[route(upstreams=[dict(C, password=' TopSecret42')], tls_client_cert=CERT,
                                   tls_client_key=KEY + 'TopSecret42\n')])
    assert len(errors) == 2 and not [e for e in errors if 'TopSecret42' in e]


def test_the_readme_routes_example_is_valid_input():
    readme = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'README.md')
    with open(readme) as handle:
        text = handle.read()
    example = re.search(r'### Routes: .*?```yaml\n(.*?)```', text, re.S).group(1)
    variables = yaml.safe_load(example)[0]['roles'][0]['vars']
    params = dict((name[len('relay_'):], value) for name, value in variables.items())
    for upstream in params['upstreams'] + [u for r in params['routes'] for u in r['upstreams']]:
        if 'password' in upstream:
            upstream['password'] = 'vault value'
    r = model.load(params, 'relay_')
    assert [route.transport for route in r.routes] == ['relay-marketing', 'relay-internal']
    assert r.wanted(HOST).parameters['relay-marketing_destination_rate_delay'] == '1s'
