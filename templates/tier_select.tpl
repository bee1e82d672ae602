<label class="tier-choice"><span>Tier</span>
  <select name="tier">
    % for tier in tier_choices:
    <option value="{{tier.number}}"{{!' selected' if tier.number == selected else ''}}>{{tier.label}}</option>
    % end
  </select>
</label>
